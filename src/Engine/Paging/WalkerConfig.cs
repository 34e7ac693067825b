namespace Engine.Paging;

/// <summary>
/// Everything a walker needs to judge entries, validated once on the control path and handed to
/// the hot path as immutable, blittable data.
/// </summary>
internal readonly struct WalkerConfig
{
    private readonly ReservedBitMasks _masks;

    private readonly DivertMasks _divert;

    private WalkerConfig(EntryFormat format, in ReservedBitMasks masks, ulong presentMask, ulong permissionMask, bool executeEnforced, bool rejectWriteOnly)
    {
        Format = format;
        _masks = masks;
        // The fast paths' one test per level: the PS = 0 must-be-zero bits plus PS itself (levels 2+),
        // so a reserved bit and a large leaf both divert the walk from the straight line to the careful path.
        for (int level = 1; level <= ReservedBitMasks.MaxLevels; level++)
            _divert[level - 1] = masks[level - 1] | (level > 1 ? EptEntry.PageSizeBit : 0);
        PresentMask = presentMask;
        PermissionMask = permissionMask;
        ExecuteEnforced = executeEnforced;
        RejectWriteOnly = rejectWriteOnly;
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
