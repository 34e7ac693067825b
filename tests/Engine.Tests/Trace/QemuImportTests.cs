using System.Globalization;
using System.Text.RegularExpressions;
using Engine.Paging;
using Engine.Trace;

namespace Engine.Tests.Trace;

public partial class QemuImportTests
{
    // Written for the test: two devices in two QEMU domains, 4K (RW and write-only), 2M and 1G leaves,
    // hits and updates, every invalidation kind, another vtd_* event, a line that is no event, a
    // malformed line, and a leaf that changes after an invalidation.
    private static readonly string[] Events =
    [
        "vtd_iotlb_page_update IOTLB page update sid 0x10 iova 0x7ffff000 slpte 0x12345003 domain 0x1",
        "vtd_iotlb_page_hit IOTLB page hit sid 0x10 iova 0x7ffff800 slpte 0x12345003 domain 0x1",
        "vtd_iotlb_page_update IOTLB page update sid 0x10 iova 0x40212345 slpte 0x80200083 domain 0x1",
        "vtd_iotlb_page_hit IOTLB page hit sid 0x10 iova 0x40300000 slpte 0x80200083 domain 0x1",
        "vtd_iotlb_page_update IOTLB page update sid 0x18 iova 0x80123456 slpte 0x140000081 domain 0x2",
        "vtd_iotlb_page_update IOTLB page update sid 0x18 iova 0x1000 slpte 0x22222002 domain 0x2",
        "vtd_ce_present context entry present sid 0x10",
        "vtd_inv_desc_iotlb_pages iotlb invalidate domain 0x1 addr 0x7ffff000 mask 0x0",
        "vtd_iotlb_page_update IOTLB page update sid 0x10 iova 0x7ffff010 slpte 0x12345003 domain 0x1",
        "vtd_inv_desc_iotlb_global iotlb invalidate global",
        "vtd_inv_desc_iotlb_domain iotlb invalidate whole domain 0x2",
        "vtd_inv_desc_iotlb_pasid_pages iotlb invalidate domain 0x1 addr 0x40200000 mask 0x9 pasid 0x0",
        "vtd_inv_desc_iotlb_pasid iotlb invalidate domain 0x2 pasid 0x5",
        "vtd_iotlb_page_hit IOTLB page hit sid 0x10 iova zz slpte 0x1 domain 0x1",
        "vtd_iotlb_page_update IOTLB page update sid 0x18 iova 0x80000000 slpte 0x140000081 domain 0x2",
        "vtd_inv_desc_iotlb_pages iotlb invalidate domain 0x1 addr 0x7ffff000 mask 0x0",
        "vtd_iotlb_page_update IOTLB page update sid 0x10 iova 0x7ffff020 slpte 0x54321001 domain 0x1",
        "vtd_iotlb_page_hit IOTLB page hit sid 0x10 iova 0x7ffff030 slpte 0x54321001 domain 0x1",
        "vtd_inv_desc_iotlb_domain iotlb invalidate whole domain 0x1",
        "vtd_iotlb_page_update IOTLB page update sid 0x10 iova 0x7fe12345 slpte 0x66600083 domain 0x1",
        "hello from the guest console",
    ];

    private static string Log(bool prefixed) => string.Join('\n', Events.Select((e, i) =>
        prefixed && !e.StartsWith("hello", StringComparison.Ordinal) ? $"4242@1712345678.{i:D6}:{e}" : e)) + "\n";

    [GeneratedRegex(@"vtd_iotlb_page_(hit|update) .*iova 0x(?<iova>[0-9a-f]+) slpte 0x(?<slpte>[0-9a-f]+)")]
    private static partial Regex TranslationLine();

    // The HPA sum straight from the log: slpte's address bits, cleared below the leaf's size, plus
    // the IOVA's offset in the leaf (PS clear: 4K; PS set: 1G when 1G-aligned, else 2M).
    private static ulong HpaSumFromLog(string log)
    {
        ulong sum = 0;
        foreach (Match m in TranslationLine().Matches(log))
        {
            ulong iova = ulong.Parse(m.Groups["iova"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong slpte = ulong.Parse(m.Groups["slpte"].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            ulong address = slpte & 0x000F_FFFF_FFFF_F000;
            ulong size = (slpte & 0x80) == 0 ? 1UL << 12 : (address & ((1UL << 30) - 1)) == 0 ? 1UL << 30 : 1UL << 21;
            sum += (address & ~(size - 1)) + (iova & (size - 1));
        }
        return sum;
    }

    private static (QemuImportReport Report, byte[] Trace, List<MalformedLine> Malformed) Import(string log, bool strict = false)
    {
        var output = new MemoryStream();
        var malformed = new List<MalformedLine>();
        QemuImportReport report = QemuLogImporter.Import(() => new StringReader(log), output, "test log", strict, malformed.Add);
        return (report, output.ToArray(), malformed);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AnImportedLogReplaysWithoutFaultsToTheHpaSumOfItsSlptes(bool prefixed)
    {
        string log = Log(prefixed);
        var (report, trace, malformed) = Import(log);
        Assert.Equal(11, report.Translations);
        Assert.Equal((3L, 8L), (report.QemuHits, report.QemuUpdates));
        Assert.Equal(new InvalidationCounts(1, 2, 2, 1, 1), report.Invalidations);
        Assert.Equal((2L, 1L, 1L), (report.SkippedLines, report.OtherVtdLines, report.MalformedLines));
        Assert.Equal(new MalformedLine(14, "'iova' is followed by 'zz', not a hexadecimal number"), Assert.Single(malformed));
        Assert.Equal(HpaSumFromLog(log), report.HpaSum);

        ReplayReport replay = TraceSamples.Replay(trace);
        Assert.Equal(0, replay.Faults);
        Assert.Equal(11, replay.Translations);
        Assert.Equal(HpaSumFromLog(log), replay.HpaSum);
        Assert.Equal(3UL, replay.QemuHits);
        Assert.Equal(8UL, replay.QemuUpdates);
        Assert.Equal(3.0 / 11, replay.QemuHitRate!.Value, 9);
    }

    [Fact]
    public void BothPrefixStylesGiveTheSameTrace()
    {
        byte[] a = Import(Log(prefixed: true)).Trace, b = Import(Log(prefixed: false)).Trace;
        Assert.Equal(TraceSamples.ReadAll(a).Select(r => r.Record), TraceSamples.ReadAll(b).Select(r => r.Record));
    }

    [Fact]
    public void LeavesAre4K2MAnd1GByThePsBitAndAlignmentAndChangedLeavesAreReplaced()
    {
        var maps = TraceSamples.ReadAll(Import(Log(true)).Trace).Select(r => r.Record).Where(r => r.Kind == TraceRecordKind.PagingMap).ToList();
        Assert.Contains(maps, m => m is { Address: 0x7ffff000, Value: 0x12345000, Size: 0x1000, Code: (byte)Access.ReadWrite });
        Assert.Contains(maps, m => m is { Address: 0x40200000, Value: 0x80200000, Size: 0x200000 });
        Assert.Contains(maps, m => m is { Address: 0x80000000, Value: 0x140000000, Size: 0x40000000, Code: (byte)Access.Read });
        Assert.Contains(maps, m => m is { Address: 0x1000, Value: 0x22222000, Size: 0x1000, Code: (byte)Access.Write });
        Assert.Contains(maps, m => m is { Address: 0x7ffff000, Value: 0x54321000, Size: 0x1000, Code: (byte)Access.Read });
        // A 2M leaf over the 4K one at 0x7ffff000: that leaf is unmapped first.
        Assert.Contains(maps, m => m is { Address: 0x7fe00000, Value: 0x66600000, Size: 0x200000 });
        var records = TraceSamples.ReadAll(Import(Log(true)).Trace).Select(r => r.Record).ToList();
        Assert.Equal(2, records.Count(r => r.Kind == TraceRecordKind.PagingUnmap));
        // The write-only leaf is translated for write, the others for read.
        Assert.Contains(records, r => r is { Kind: TraceRecordKind.Translate, Address: 0x1000, Code: (byte)Access.Write });
        Assert.Equal(10, records.Count(r => r is { Kind: TraceRecordKind.Translate, Code: (byte)Access.Read }));
    }

    [Fact]
    public void StrictStopsAtTheFirstMalformedLineNamingIt()
    {
        var e = Assert.Throws<QemuLogException>(() => Import(Log(true), strict: true));
        Assert.Equal(14, e.Line);
        Assert.StartsWith("line 14: ", e.Message);
    }

    [Theory]
    [InlineData("vtd_iotlb_page_hit IOTLB page hit sid 0x10 iova 0x1000 domain 0x1", "no 'slpte 0x…' field")]
    [InlineData("vtd_iotlb_page_update IOTLB page update sid 0x10000 iova 0x1000 slpte 0x3 domain 0x1", "'sid' 0x10000 is larger than its maximum 0xffff")]
    [InlineData("vtd_iotlb_page_update IOTLB page update sid 0x10 iova 0x1000 slpte 0x12340000 domain 0x1", "grants neither read nor write")]
    [InlineData("vtd_iotlb_page_update IOTLB page update sid 0x10 iova 0x1000000000000 slpte 0x3 domain 0x1", "beyond the 48-bit width")]
    [InlineData("vtd_inv_desc_iotlb_pages iotlb invalidate domain 0x1 addr 0x1000 mask 0x40", "'mask' 0x40 is larger")]
    [InlineData("12x@1.2:vtd_inv_desc_iotlb_global iotlb invalidate global", "PID@SECONDS.MICROS")]
    public void MalformedLinesSayWhatIsWrong(string line, string problem)
    {
        var (report, _, malformed) = Import("vtd_inv_desc_iotlb_global iotlb invalidate global\n" + line + "\n");
        Assert.Equal(1, report.MalformedLines);
        Assert.Equal(2, Assert.Single(malformed).Line);
        Assert.Contains(problem, malformed[0].Problem);
    }

    // An excerpt of a real log: QEMU 7.2 (Debian 12) booting Debian's 6.1 kernel with intel_iommu=on
    // and iommu.strict=1 on an emulated NVMe disk (q35, intel-iommu intremap=on aw-bits=48, TCG,
    // -msg timestamp=on -trace 'vtd_*'): the first 500 IOTLB hit/update/invalidation lines, and every
    // 40th other vtd_* line.
    [Fact]
    public void ARealQemuLogImportsWithoutMalformedLinesAndReplaysWithoutFaultsToItsHpaSum()
    {
        string log = File.ReadAllText(Engine.Tests.Embedding.RepositoryFiles.PathOf("tests/Engine.Tests/Trace/qemu-7.2-nvme-boot.log"));
        var (report, trace, malformed) = Import(log);
        Assert.Empty(malformed);
        Assert.Equal((358L, 80L), (report.QemuHits, report.QemuUpdates));
        Assert.True(report.Invalidations.Page > 0 && report.Invalidations.Global > 0, $"{report.Invalidations}");
        Assert.True(report.OtherVtdLines > 0);
        ReplayReport replay = TraceSamples.Replay(trace);
        Assert.Equal((438L, 0L), (replay.Translations, replay.Faults));
        Assert.Equal(HpaSumFromLog(log), replay.HpaSum);
    }

    // Any line — cut, spliced, with random characters — parses to an event, a skip or a malformed
    // line; it never throws.
    [Fact]
    public void MangledLinesNeverThrow()
    {
        var rng = new Random(77);
        const string Alphabet = "0123456789abcdefx@.: _vtdiomuplgsnarkh\t";
        for (int i = 0; i < 20_000; i++)
        {
            char[] line = Events[rng.Next(Events.Length)].ToCharArray();
            for (int m = rng.Next(1, 4); m > 0; m--)
                line[rng.Next(line.Length)] = Alphabet[rng.Next(Alphabet.Length)];
            string text = rng.Next(3) == 0 ? $"{rng.Next()}@{rng.Next()}.{rng.Next(1000000)}:" + new string(line) : new string(line[..rng.Next(line.Length + 1)]);
            QemuEvent e = QemuLogLine.Parse(text);
            Assert.True(e.Kind != QemuEventKind.Malformed || !string.IsNullOrEmpty(e.Problem), text);
        }
    }

    // Leaves of every size that overlap and change, devices that move between domains: whatever the
    // log, the importer's leaves make Engine answer what QEMU did (no fault, the log's HPA sum).
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RandomOverlappingLeavesReplayWithoutFaultsToTheLogsHpaSum(int seed)
    {
        var rng = new Random(seed);
        var lines = new List<string>();
        for (int i = 0; i < 3000; i++)
        {
            int pick = rng.Next(100);
            if (pick < 5)
            {
                lines.Add($"vtd_inv_desc_iotlb_pages iotlb invalidate domain 0x{rng.Next(1, 4):x} addr 0x{(ulong)rng.Next(1 << 20) << 12:x} mask 0x{rng.Next(10):x}");
                continue;
            }
            if (pick < 7)
            {
                lines.Add($"vtd_inv_desc_iotlb_domain iotlb invalidate whole domain 0x{rng.Next(1, 4):x}");
                continue;
            }
            // IOVAs in a 4 GiB window so leaves of all sizes collide; leaf addresses aligned to their size.
            ulong iova = (ulong)rng.NextInt64(0, 4L << 30);
            int level = rng.Next(10) switch { < 6 => 1, < 9 => 2, _ => 3 };
            ulong address = level switch
            {
                1 => (ulong)rng.Next(1 << 20) << 12,
                2 => ((ulong)rng.Next(1 << 10) << 21) | (1UL << 21),   // never 1G-aligned: read as 2M
                _ => (ulong)rng.Next(1, 16) << 30,
            };
            ulong slpte = address | (level > 1 ? 0x80UL : 0) | (uint)rng.Next(1, 4);
            string kind = rng.Next(2) == 0 ? "hit" : "update";
            lines.Add($"vtd_iotlb_page_{kind} IOTLB page {kind} sid 0x{rng.Next(8, 12):x} iova 0x{iova:x} slpte 0x{slpte:x} domain 0x{rng.Next(1, 4):x}");
        }
        string log = string.Join('\n', lines);
        var (report, trace, malformed) = Import(log);
        Assert.Empty(malformed);
        ReplayReport replay = TraceSamples.Replay(trace);
        Assert.Equal(0, replay.Faults);
        Assert.Equal(report.Translations, replay.Translations);
        Assert.Equal(HpaSumFromLog(log), replay.HpaSum);
        Assert.True(report.Unmaps > 0, "leaves were replaced");
    }

    // Translations only: the answers do not depend on order, so several threads give the same sums.
    [Fact]
    public void AnImportedTraceReplaysOnSeveralThreadsToTheSameSums()
    {
        var lines = new List<string>();
        var rng = new Random(5);
        for (int i = 0; i < 50_000; i++)
        {
            ulong page = (ulong)rng.Next(2048);
            lines.Add($"{100 + i}@1712345678.{i:D6}:vtd_iotlb_page_{(i < 2048 ? "update" : "hit")} IOTLB page x sid 0x{8 + (i & 3):x} iova 0x{(page << 12) | (uint)rng.Next(4096):x} slpte 0x{0x1_0000_0003UL + (page << 12):x} domain 0x3");
            if (i % 5000 == 4999)
                lines.Add("vtd_inv_desc_iotlb_domain iotlb invalidate whole domain 0x3");
        }
        string log = string.Join('\n', lines);
        var (report, trace, _) = Import(log);
        ReplayReport one = TraceSamples.Replay(trace), four = TraceSamples.Replay(trace, threads: 4);
        Assert.Equal(HpaSumFromLog(log), report.HpaSum);
        Assert.Equal((0L, report.HpaSum), (one.Faults, one.HpaSum));
        Assert.Equal((one.Translations, one.Faults, one.HpaSum, one.Checksum), (four.Translations, four.Faults, four.HpaSum, four.Checksum));
    }
}
