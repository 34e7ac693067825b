namespace Engine.Paging;

/// <summary>
/// Everything a walker needs to judge entries, validated once on the control path and handed to
/// the hot path as immutable, blittable data.
/// </summary>
internal readonly struct WalkerConfig
{
    private readonly ReservedBitMasks _masks;

    private readonly DivertMasks _divert;

    // The straight line's masks as plain fields, not an inline array: the line reads them at fixed
    // offsets from the config, where an indexed element costs an address computation per level.
    private readonly ulong _line5, _line4, _line3, _line2;

    private WalkerConfig(EntryFormat format, in ReservedBitMasks masks, ulong presentMask, ulong permissionMask, bool executeEnforced, bool rejectWriteOnly)
    {
        Format = format;
        _masks = masks;
        // The fast paths' one test per level: the PS = 0 must-be-zero bits plus PS itself (levels 2+),
        // so a reserved bit and a large leaf both divert the walk from the straight line to the careful path.
        for (int level = 1; level <= ReservedBitMasks.MaxLevels; level++)
            _divert[level - 1] = masks[level - 1] | (level > 1 ? EptEntry.PageSizeBit : 0);
        // The straight line's permission test is on the entry itself: what a request needs (R, W, and X
        // where execute is enforced) must be among the permissions that count.
        if ((permissionMask & (EptEntry.ReadBit | EptEntry.WriteBit)) != (EptEntry.ReadBit | EptEntry.WriteBit)
            || (executeEnforced && (permissionMask & EptEntry.ExecuteBit) == 0))
            throw new ArgumentException($"Permission mask 0x{permissionMask:x} lacks R, W or (enforced) X.", nameof(permissionMask));
        PresentMask = presentMask;
        PermissionMask = permissionMask;
        ExecuteEnforced = executeEnforced;
        RejectWriteOnly = rejectWriteOnly;
        // The straight line's test of a table pointer (levels 2+) is made on entry − (region base +
        // all permissions): its low bits are 0 only when every permission bit is set (so a partial
        // table pointer leaves the line, and the effective permissions are the leaf's), and the
        // subtraction rebases the address in the same instruction. It is exact for the bits the
        // subtraction leaves alone; the reserved address bits (at and above a width) it could change
        // are never set in an HPA below the lowest of them, which is why a region must end at or below
        // LineCeiling to be walked on the line. A permission mask that is not 2^k − 1 gets no line.
        LeafDivertMask = _divert[0];
        ulong ceiling = 0;
        if (permissionMask != 0 && (permissionMask & (permissionMask + 1)) == 0)
        {
            ceiling = 1UL << 52;
            for (int level = 2; level <= ReservedBitMasks.MaxLevels; level++)
            {
                ulong addressBits = _divert[level - 1] & EptEntry.AddressMask;
                if (addressBits != 0)
                    ceiling = Math.Min(ceiling, addressBits & (0 - addressBits));
            }
        }
        if (ceiling != 0)
        {
            _line5 = _divert[4] | permissionMask;
            _line4 = _divert[3] | permissionMask;
            _line3 = _divert[2] | permissionMask;
            _line2 = _divert[1] | permissionMask;
        }
        LineCeiling = ceiling;
    }

    /// <summary>The entry format.</summary>
    public EntryFormat Format { get; }

    /// <summary>Bits of which at least one must be set for an entry to be present.</summary>
    public ulong PresentMask { get; }

    /// <summary>Permission bits that count towards the effective permissions.</summary>
    public ulong PermissionMask { get; }

    /// <summary>Whether an execute access needs X; otherwise it is checked as a read.</summary>
    public bool ExecuteEnforced { get; }

    /// <summary>Whether W without R is a misconfiguration (EPT), reported as a reserved-bit fault.</summary>
    public bool RejectWriteOnly { get; }

    /// <summary>The must-be-zero masks, [PS][level − 1].</summary>
    public ReservedBitMasks Masks => _masks;

    internal ulong Mask(int index) => _masks[index];

    /// <summary>
    /// The bits that divert an entry at <paramref name="level"/> (1..5) off a fast path: its PS = 0
    /// must-be-zero bits, and PS above level 1. An entry with none of them set (and present) is a plain
    /// table pointer or 4 KiB leaf.
    /// </summary>
    internal ulong DivertMask(int level) => _divert[level - 1];

    /// <summary>
    /// The bits of <c>entry − (region base + <see cref="PermissionMask"/>)</c> that divert a table
    /// pointer at <paramref name="level"/> (2..5) off the straight line: its <see cref="DivertMask"/>
    /// and the permission bits (0 there only when the entry has every permission).
    /// </summary>
    internal ulong LineMask(int level) => level switch
    {
        5 => _line5,
        4 => _line4,
        3 => _line3,
        _ => _line2,
    };

    /// <summary><see cref="DivertMask"/> of level 1, as a plain field for the straight line.</summary>
    internal ulong LeafDivertMask { get; }

    /// <summary>
    /// The straight line walks a region only if it ends at or below this HPA (the lowest reserved
    /// address bit of the table-pointer masks, at most 2^52); 0 when the line is never usable.
    /// </summary>
    internal ulong LineCeiling { get; }

    [System.Runtime.CompilerServices.InlineArray(ReservedBitMasks.MaxLevels)]
    private struct DivertMasks
    {
        private ulong _element0;
    }

    /// <summary>The CPU's view of KVM's EPT, judged with the given must-be-zero masks (e.g. <see cref="ReservedBitMasks.ForEpt"/>).</summary>
    public static WalkerConfig Ept(in ReservedBitMasks masks) =>
        new(EntryFormat.Ept, masks, EptEntry.PermissionMask, EptEntry.PermissionMask, executeEnforced: true, rejectWriteOnly: true);

    /// <summary>
    /// The IOMMU's view: VT-d second-stage rules for a unit with this host address width, superpage
    /// level (0 = 4K, 1 = 2M, 2 = 1G), snoop control (ECAP.SC), device TLB (ECAP.DT) and execute
    /// requests (ECAP.ERS with SSEE).
    /// </summary>
    public static WalkerConfig SecondStage(int hostAddressWidth, int superpageLevel, bool snoopControl = true, bool deviceTlb = false, bool executeRequests = false)
    {
        var masks = ReservedBitMasks.ForSecondStage(hostAddressWidth, superpageLevel, snoopControl, deviceTlb);
        ulong perms = executeRequests ? SlPte.ReadBit | SlPte.WriteBit | SlPte.ExecuteBit : SlPte.ReadBit | SlPte.WriteBit;
        return new(EntryFormat.SecondStage, masks, SlPte.ReadBit | SlPte.WriteBit, perms, executeRequests, rejectWriteOnly: false);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Format} walker (present 0x{PresentMask:x}, permissions 0x{PermissionMask:x})";
}
