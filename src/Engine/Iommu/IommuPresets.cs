namespace Engine.Iommu;

/// <summary>A named pair of capability registers with where the values come from.</summary>
/// <param name="Name">Short name (used by the CLI).</param>
/// <param name="Cap">CAP_REG.</param>
/// <param name="Ecap">ECAP_REG.</param>
/// <param name="Source">Where the values were read (a dmesg line of that platform, or QEMU's composition).</param>
/// <param name="Description">What the unit is, in a sentence.</param>
public sealed record IommuPreset(string Name, CapabilityRegister Cap, ExtendedCapabilityRegister Ecap, string Source, string Description)
{
    /// <summary>What the Linux driver derives from this pair.</summary>
    public DriverView Driver => new(Cap, Ecap);
}

/// <summary>
/// Capability values of real and emulated IOMMUs, so users need not compose registers by hand.
/// Values are copied from the sources named (kernel log lines "DMAR: dmarN: ... cap X ecap Y").
/// </summary>
public static class IommuPresets
{
    /// <summary>
    /// A scalable-mode server unit able to host a KVM domain: Granite Rapids (Xeon 6515P, Dell
    /// PowerEdge R770, VT-d 7.0). 57-bit/5-level and 48-bit SAGAW, 1 GiB pages, SC, SMTS, SMPWC,
    /// PASID, PRS, nested, ESRTPS.
    /// </summary>
    public static readonly IommuPreset GraniteRapidsServer = new(
        "server", new CapabilityRegister(0xf9ed008cee780c66), new ExtendedCapabilityRegister(0x3fef9ea6f0efdf),
        "kernel log of a Dell PowerEdge R770 with a Xeon 6515P (ver 7:0), quoted in a public pre-check report",
        "Granite Rapids server IOMMU: scalable mode, 5-level, 1G pages, snoop control, page-walk coherent; can host a KVM domain");

    /// <summary>
    /// Sapphire/Emerald Rapids server (Intel M50FCP board, VT-d 6.0): scalable mode, 5-level, 1 GiB
    /// pages, SC, SMPWC; PASID reported off by that BIOS.
    /// </summary>
    public static readonly IommuPreset SapphireRapidsServer = new(
        "spr", new CapabilityRegister(0x19ed008c40780c66), new ExtendedCapabilityRegister(0x3ee9e86f050df),
        "kernel log in intel/intel-device-plugins-for-kubernetes issue #1836 (M50FCP board)",
        "Sapphire/Emerald Rapids server IOMMU: scalable mode, 5-level, 1G pages, SC, SMPWC");

    /// <summary>
    /// A client unit that cannot host a KVM domain: the graphics DMAR unit of a Raptor Lake-P laptop
    /// (Core i9-13900H, VT-d 4.0): no snoop control, no scalable mode, no PSI, 39-bit.
    /// </summary>
    public static readonly IommuPreset RaptorLakeGraphics = new(
        "client", new CapabilityRegister(0x1c0000c40660462), new ExtendedCapabilityRegister(0x29a00f0505e),
        "kernel log (dmar0) of a Core i9-13900H laptop in a Proxmox GPU-passthrough guide and stefanpartheym/archlinux-ipu6-webcam PR #42",
        "Raptor Lake-P graphics IOMMU: legacy mode only, no snoop control, no PSI; cannot host a KVM domain");

    /// <summary>A pre-scalable-mode server: Skylake-SP (Xeon Gold 6146), legacy mode, 48-bit, 8 fault registers.</summary>
    public static readonly IommuPreset SkylakeServer = new(
        "skylake", new CapabilityRegister(0x8d2078c106f0466), new ExtendedCapabilityRegister(0xf020df),
        "kernel log in the iommu list thread \"A problem of Intel IOMMU hardware?\" (Xeon Gold 6146)",
        "Skylake-SP server IOMMU: legacy mode only (no SMTS), SC, 48-bit, 2M/1G pages");

    /// <summary>
    /// QEMU's emulated intel-iommu with defaults since machine type 9.2 (aw-bits 48, intremap on
    /// under TCG): cap 00d2008c222f0606, ecap f00f4a (<c>vtd_cap_init</c>).
    /// </summary>
    public static readonly IommuPreset QemuDefault = new(
        "qemu", new CapabilityRegister(0x00d2008c222f0606), new ExtendedCapabilityRegister(0xf00f4a),
        "QEMU hw/i386/intel_iommu.c vtd_cap_init with aw-bits=48 (default from machine 9.2), intremap=on, pt=on",
        "QEMU intel-iommu defaults: legacy mode, 48-bit, 2M/1G pages, one fault register");

    /// <summary>QEMU's intel-iommu with <c>x-scalable-mode=on</c> (adds SMTS, SRS, SLTS): cannot host a KVM domain (no SC, no SMPWC).</summary>
    public static readonly IommuPreset QemuScalable = new(
        "qemu-sm", new CapabilityRegister(0x00d2008c222f0606), new ExtendedCapabilityRegister(0x480080f00f4a),
        "QEMU hw/i386/intel_iommu.c vtd_cap_init with aw-bits=48, x-scalable-mode=on",
        "QEMU intel-iommu in scalable mode: no snoop control or page-walk coherency");

    /// <summary>Every preset, by name.</summary>
    public static IReadOnlyList<IommuPreset> All { get; } =
        [GraniteRapidsServer, SapphireRapidsServer, RaptorLakeGraphics, SkylakeServer, QemuDefault, QemuScalable];

    // The names an embedder finds in code (the fields above) next to the CLI's short ones: the first
    // embedder typed "GraniteRapidsServer" and was told only "server" existed.
    private static readonly (string Name, IommuPreset Preset)[] TypeNames =
    [
        (nameof(GraniteRapidsServer), GraniteRapidsServer),
        (nameof(SapphireRapidsServer), SapphireRapidsServer),
        (nameof(RaptorLakeGraphics), RaptorLakeGraphics),
        (nameof(SkylakeServer), SkylakeServer),
        (nameof(QemuDefault), QemuDefault),
        (nameof(QemuScalable), QemuScalable),
    ];

    /// <summary>Every name <see cref="Get"/> accepts: each preset's short name, then its field name here.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. All.Select(p => p.Name), .. TypeNames.Select(t => t.Name)];

    /// <summary>
    /// The preset called <paramref name="name"/>, case-insensitive: its short <see cref="IommuPreset.Name"/>
    /// ("server") or the name of its field in this class ("GraniteRapidsServer").
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    /// <exception cref="ArgumentException">No preset has that name; the message lists every name accepted.</exception>
    public static IommuPreset Get(string name) =>
        TryGet(name, out IommuPreset? preset)
            ? preset
            : throw new ArgumentException($"No IOMMU preset is called '{name}'; known: {string.Join(", ", All.Select(p => $"{p.Name} ({TypeNames.First(t => t.Preset == p).Name})"))}.", nameof(name));

    /// <summary>Looks a preset up as <see cref="Get"/> does, without throwing for an unknown name.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="name"/> is null.</exception>
    public static bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IommuPreset? preset)
    {
        ArgumentNullException.ThrowIfNull(name);
        preset = All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? TypeNames.FirstOrDefault(t => string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase)).Preset;
        return preset is not null;
    }
}
