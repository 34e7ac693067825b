using System.Diagnostics;
using Engine.Iommu;
using Engine.Paging;

namespace Engine.Trace;

/// <summary>A malformed line: its number (from 1) and what is wrong.</summary>
public sealed record MalformedLine(long Line, string Problem);

/// <summary>Invalidation lines by kind.</summary>
public sealed record InvalidationCounts(long Global, long Domain, long Page, long PasidPage, long Pasid);

/// <summary>What an import read and wrote.</summary>
/// <param name="Translations">Hit and update lines, each one translation record.</param>
/// <param name="HpaSum">The wrapping sum over those lines of the leaf's address plus the IOVA's offset in the leaf: what a replay's <c>hpaSum</c> must be.</param>
/// <param name="Malformed">The first malformed lines (at most <see cref="QemuLogImporter.MalformedKept"/>).</param>
public sealed record QemuImportReport(
    long Lines,
    long Translations,
    long QemuHits,
    long QemuUpdates,
    InvalidationCounts Invalidations,
    long SkippedLines,
    long OtherVtdLines,
    long MalformedLines,
    IReadOnlyList<MalformedLine> Malformed,
    ulong HpaSum,
    long Records,
    int Devices,
    int Domains,
    long Maps,
    long Unmaps,
    double Seconds,
    double LinesPerSecond);

/// <summary>A malformed line under <c>--strict</c>, or a log that yields no trace.</summary>
public sealed class QemuLogException(long line, string problem) : Exception(line > 0 ? $"line {line}: {problem}" : problem)
{
    /// <summary>The line (from 1), or 0 when the problem is not one line's.</summary>
    public long Line { get; } = line;
}

/// <summary>
/// <c>engine trace import-qemu</c>: turns a QEMU VT-d trace log into an Engine trace. Two passes over
/// the log, each streamed: the first finds the source ids and domain ids (the header's devices and
/// paging domains) and counts hits and updates, the second writes the records.
/// </summary>
/// <remarks>
/// <para>Every hit or update line is one translation by <c>sid</c> in <c>domain</c> of <c>iova</c>; its
/// <c>slpte</c> is the leaf the walk found (a hit line carries the cached leaf). The importer keeps, per
/// QEMU domain, the leaves it has installed in that domain's Engine paging domain; before each
/// translation it makes the leaf covering the IOVA equal the line's — unmapping a different leaf
/// (and, for a large leaf, every smaller one inside it) and mapping the line's — so Engine
/// translates the IOVA to exactly the address QEMU did. A device is attached to the domain of
/// its line (detached from its previous one first). Invalidation lines become invalidation records in
/// log order; they leave the leaves in place (the log shows only what QEMU's walks found), so after
/// one Engine misses and walks as QEMU did.</para>
/// <para>Leaf size: PS (bit 7) clear → 4 KiB; PS set → 1 GiB when the leaf's address is
/// 1 GiB-aligned, else 2 MiB. The log does not say the level, so a 2 MiB leaf at a 1 GiB-aligned
/// address is taken for a 1 GiB one (documented in docs/trace-format.md). The leaf covers the IOVA
/// aligned down to its size; its address is slpte bits 51:12 with the bits below the size cleared;
/// its permissions are slpte bits 1:0. The translation asks for read when the leaf grants it, else
/// write.</para>
/// <para>The platform: one IOMMU with QEMU's default registers (legacy mode, 48-bit, 2M/1G pages),
/// one device per source id, one paging domain per QEMU domain id.</para>
/// </remarks>
public static class QemuLogImporter
{
    /// <summary>Malformed lines kept in the report (all are counted).</summary>
    public const int MalformedKept = 20;

    /// <summary>The IOVA width of QEMU's default intel-iommu (aw-bits 48).</summary>
    public const int IovaWidth = 48;

    private const ulong AddressMask = 0x000F_FFFF_FFFF_F000UL;
    private const ulong PsBit = 1UL << 7;

    /// <summary>Imports the log <paramref name="open"/> returns (called twice: once per pass) into <paramref name="output"/>.</summary>
    /// <param name="open">Opens the log from its start.</param>
    /// <param name="output">Where the trace goes.</param>
    /// <param name="source">Named in the trace's header.</param>
    /// <param name="strict">Stop at the first malformed line (<see cref="QemuLogException"/>) instead of skipping it.</param>
    /// <param name="malformed">Told of each malformed line as the second pass meets it (not under <paramref name="strict"/>).</param>
    public static QemuImportReport Import(Func<TextReader> open, Stream output, string source, bool strict = false, Action<MalformedLine>? malformed = null)
    {
        ArgumentNullException.ThrowIfNull(open);
        ArgumentNullException.ThrowIfNull(output);
        var clock = Stopwatch.StartNew();
        // Pass 1: devices, domains, QEMU's own hit and update counts.
        var sids = new SortedSet<ushort>();
        var domainIds = new SortedSet<ushort>();
        long hits = 0, updates = 0, lineNumber = 0;
        using (TextReader reader = open())
        {
            while (reader.ReadLine() is { } line)
            {
                lineNumber++;
                QemuEvent e = Check(QemuLogLine.Parse(line));
                switch (e.Kind)
                {
                    case QemuEventKind.Hit or QemuEventKind.Update:
                        sids.Add(e.Sid);
                        domainIds.Add(e.Domain);
                        if (e.Kind == QemuEventKind.Hit)
                            hits++;
                        else
                            updates++;
                        break;
                    case QemuEventKind.InvalidateDomain or QemuEventKind.InvalidatePages or QemuEventKind.InvalidatePasidPages or QemuEventKind.InvalidatePasid:
                        domainIds.Add(e.Domain);
                        break;
                    case QemuEventKind.Malformed when strict:
                        throw new QemuLogException(lineNumber, e.Problem!);
                }
            }
        }
        if (sids.Count > TraceRecord.NoIndex || domainIds.Count > TraceRecord.NoIndex)
            throw new QemuLogException(0, $"{sids.Count} source ids and {domainIds.Count} domains; a trace holds at most {TraceRecord.NoIndex - 1} of each.");
        ushort[] sidList = [.. sids];
        ushort[] domainList = [.. domainIds];
        var deviceIndex = new Dictionary<ushort, int>();
        for (int i = 0; i < sidList.Length; i++)
            deviceIndex[sidList[i]] = i;
        var domainIndex = new Dictionary<ushort, int>();
        for (int i = 0; i < domainList.Length; i++)
            domainIndex[domainList[i]] = i;
        IommuPreset qemu = IommuPresets.QemuDefault;
        var platform = new TracePlatform
        {
            Source = source,
            MemoryBytes = 1UL << 30,
            HostAddressWidth = 52,
            QemuHits = (ulong)hits,
            QemuUpdates = (ulong)updates,
            Iommus = [new TraceIommu("qemu", qemu.Cap.Value, qemu.Ecap.Value)],
            Devices = [.. sidList.Select(s => new TraceDevice($"sid 0x{s:x4} ({s >> 8:x2}:{(s >> 3) & 0x1F:x2}.{s & 7})", s, 0, Engine.Control.DeviceAbilities.None))],
            Domains = [.. domainList.Select(_ => new TraceDomain(TraceDomainKind.Paging, -1, -1))],
        };

        // Pass 2: the records.
        var writer = new TraceWriter(output, platform, leaveOpen: true);
        var leaves = new LeafModel[domainList.Length];
        for (int i = 0; i < leaves.Length; i++)
            leaves[i] = new LeafModel();
        int[] attachedTo = new int[sidList.Length];
        Array.Fill(attachedTo, -1);
        long translations = 0, skipped = 0, otherVtd = 0, bad = 0, maps = 0, unmaps = 0;
        long global = 0, domainInv = 0, page = 0, pasidPage = 0, pasidInv = 0;
        ulong hpaSum = 0;
        var kept = new List<MalformedLine>();
        lineNumber = 0;
        using (TextReader reader = open())
        {
            while (reader.ReadLine() is { } line)
            {
                lineNumber++;
                QemuEvent e = Check(QemuLogLine.Parse(line));
                switch (e.Kind)
                {
                    case QemuEventKind.Hit or QemuEventKind.Update:
                    {
                        if (!deviceIndex.TryGetValue(e.Sid, out int device) || !domainIndex.TryGetValue(e.Domain, out int domain))
                            throw new QemuLogException(lineNumber, "the log changed between the two passes (a source id or domain the first pass did not see)");
                        if (attachedTo[device] != domain)
                        {
                            if (attachedTo[device] >= 0)
                                writer.Write(TraceRecord.Detach(attachedTo[device], device));
                            writer.Write(TraceRecord.Attach(domain, device));
                            attachedTo[device] = domain;
                        }
                        (ulong iovaBase, ulong hpa, ulong size, Access permissions) = LeafOf(e);
                        leaves[domain].Ensure(writer, domain, iovaBase, hpa, size, permissions, ref maps, ref unmaps);
                        writer.Write(TraceRecord.Translate(device, e.Address, (permissions & Access.Read) != 0 ? Access.Read : Access.Write));
                        hpaSum += hpa + (e.Address & (size - 1));
                        translations++;
                        break;
                    }
                    case QemuEventKind.InvalidateGlobal:
                        writer.Write(TraceRecord.Invalidate(0, InvalidationKind.Global, -1));
                        global++;
                        break;
                    case QemuEventKind.InvalidateDomain:
                        writer.Write(TraceRecord.Invalidate(0, InvalidationKind.Domain, domainIndex[e.Domain]));
                        domainInv++;
                        break;
                    case QemuEventKind.InvalidatePages:
                        writer.Write(TraceRecord.Invalidate(0, InvalidationKind.Page, domainIndex[e.Domain], e.Address, e.Mask));
                        page++;
                        break;
                    case QemuEventKind.InvalidatePasidPages:
                        writer.Write(TraceRecord.Invalidate(0, InvalidationKind.PasidPage, domainIndex[e.Domain], e.Address, e.Mask, e.Pasid));
                        pasidPage++;
                        break;
                    case QemuEventKind.InvalidatePasid:
                        writer.Write(TraceRecord.Invalidate(0, InvalidationKind.Pasid, domainIndex[e.Domain], pasid: e.Pasid));
                        pasidInv++;
                        break;
                    case QemuEventKind.Malformed:
                        bad++;
                        var m = new MalformedLine(lineNumber, e.Problem!);
                        if (kept.Count < MalformedKept)
                            kept.Add(m);
                        malformed?.Invoke(m);
                        break;
                    default:
                        skipped++;
                        if (e.OtherVtd)
                            otherVtd++;
                        break;
                }
            }
        }
        writer.Complete();
        writer.Dispose();
        double seconds = clock.Elapsed.TotalSeconds;
        return new QemuImportReport(lineNumber, translations, hits, updates, new InvalidationCounts(global, domainInv, page, pasidPage, pasidInv),
            skipped, otherVtd, bad, kept, hpaSum, writer.Records, sidList.Length, domainList.Length, maps, unmaps, seconds,
            seconds > 0 ? lineNumber / seconds : 0);
    }

    // The checks that need the line's meaning rather than its syntax.
    private static QemuEvent Check(QemuEvent e)
    {
        if (e.Kind is QemuEventKind.Hit or QemuEventKind.Update)
        {
            if ((e.Slpte & 3) == 0)
                return new QemuEvent(QemuEventKind.Malformed, Problem: $"slpte 0x{e.Slpte:x} grants neither read nor write: no leaf QEMU would cache");
            if (e.Address >> IovaWidth != 0)
                return new QemuEvent(QemuEventKind.Malformed, Problem: $"iova 0x{e.Address:x} is beyond the {IovaWidth}-bit width of QEMU's default IOMMU");
        }
        return e;
    }

    /// <summary>The leaf a hit or update line names: IOVA base, address, size and permissions (the rules in the remarks above).</summary>
    public static (ulong IovaBase, ulong Hpa, ulong Size, Access Permissions) LeafOf(in QemuEvent e)
    {
        ulong address = e.Slpte & AddressMask;
        ulong size = (e.Slpte & PsBit) == 0 ? PageSize.Size4K.Bytes() : (address & (PageSize.Size1G.Bytes() - 1)) == 0 ? PageSize.Size1G.Bytes() : PageSize.Size2M.Bytes();
        return (e.Address & ~(size - 1), address & ~(size - 1), size, (Access)(e.Slpte & 3));
    }

    /// <summary>The leaves installed in one domain, by size, and how many smaller leaves each larger region holds.</summary>
    private sealed class LeafModel
    {
        private readonly Dictionary<ulong, (ulong Hpa, Access Permissions)>[] _bySize = [new(), new(), new()];   // 4K, 2M, 1G; key: IOVA >> shift
        private readonly Dictionary<ulong, int> _smallIn2M = [];   // 4K leaves per 2M region
        private readonly Dictionary<ulong, int> _smallIn1G = [];   // 4K and 2M leaves per 1G region

        private static readonly int[] Shifts = [12, 21, 30];

        public void Ensure(TraceWriter writer, int domain, ulong iova, ulong hpa, ulong size, Access permissions, ref long maps, ref long unmaps)
        {
            int level = size == (1UL << 12) ? 0 : size == (1UL << 21) ? 1 : 2;
            // The leaf that covers the IOVA now, if any (at most one does).
            for (int l = 0; l < 3; l++)
            {
                ulong key = iova >> Shifts[l];
                if (!_bySize[l].TryGetValue(key, out var leaf))
                    continue;
                if (l == level && leaf.Hpa == hpa && leaf.Permissions == permissions)
                    return;
                Remove(l, key);
                writer.Write(TraceRecord.PagingUnmap(domain, key << Shifts[l], 1UL << Shifts[l]));
                unmaps++;
                break;
            }
            // Smaller leaves inside the new large one go too (one unmap of the whole range clears them).
            bool cleared = false;
            if (level == 1 && _smallIn2M.ContainsKey(iova >> 21))
            {
                for (ulong k = iova >> 12, end = k + 512; k < end; k++)
                {
                    if (_bySize[0].ContainsKey(k))
                        Remove(0, k);
                }
                cleared = true;
            }
            else if (level == 2 && _smallIn1G.ContainsKey(iova >> 30))
            {
                for (ulong m = iova >> 21, end = m + 512; m < end; m++)
                {
                    if (_bySize[1].ContainsKey(m))
                        Remove(1, m);
                    if (!_smallIn2M.ContainsKey(m))
                        continue;
                    for (ulong k = m << 9, kEnd = k + 512; k < kEnd; k++)
                    {
                        if (_bySize[0].ContainsKey(k))
                            Remove(0, k);
                    }
                }
                cleared = true;
            }
            if (cleared)
            {
                writer.Write(TraceRecord.PagingUnmap(domain, iova, size));
                unmaps++;
            }
            writer.Write(TraceRecord.PagingMap(domain, iova, hpa, size, permissions));
            maps++;
            _bySize[level][iova >> Shifts[level]] = (hpa, permissions);
            if (level == 0)
                Count(_smallIn2M, iova >> 21, 1);
            if (level < 2)
                Count(_smallIn1G, iova >> 30, 1);
        }

        private void Remove(int level, ulong key)
        {
            _bySize[level].Remove(key);
            ulong iova = key << Shifts[level];
            if (level == 0)
                Count(_smallIn2M, iova >> 21, -1);
            if (level < 2)
                Count(_smallIn1G, iova >> 30, -1);
        }

        private static void Count(Dictionary<ulong, int> counts, ulong key, int delta)
        {
            counts.TryGetValue(key, out int n);
            n += delta;
            if (n == 0)
                counts.Remove(key);
            else
                counts[key] = n;
        }
    }
}
