using System.Text.Json;
using Engine.Cli;
using Engine.Paging;
using Engine.Tests.Paging;
using Engine.Workloads;

namespace Engine.Tests.Cli;

// In the batch-walker collection: --batch-walker changes the process-wide selection.
[Collection(nameof(BatchWalkerSelectionCollection))]
public class BenchCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    // An operation that allocates costs at least one object (24 bytes); what a loaded machine adds on
    // its own — the runtime's allocations while the JIT replaces the warm-up's code late — is a few
    // KiB over millions of operations (0.003 B/op seen), so "nothing per operation" is under 1 B/op.
    private static void AssertNoOperationAllocates(JsonElement row)
    {
        double perOp = row.GetProperty("allocatedBytesPerOp").GetDouble();
        Assert.True(perOp is >= 0 and < 1, $"{row.GetProperty("name").GetString()} allocated {perOp} bytes per operation");
    }

    [Fact]
    public void JsonRowsHaveTheContractKeysAndAllocateNothing()
    {
        var (code, output, error) = Run("bench", "--workload", "inval-domain", "iotlb-hit-mt", "--threads", "2", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal("engine-bench", doc.RootElement.GetProperty("format").GetString());
        Assert.Equal(1, doc.RootElement.GetProperty("version").GetInt32());
        JsonElement[] rows = [.. doc.RootElement.GetProperty("workloads").EnumerateArray()];
        Assert.Equal(["inval-domain", "iotlb-hit-mt"], rows.Select(r => r.GetProperty("name").GetString()));
        foreach (JsonElement row in rows)
        {
            Assert.Equal(["allocatedBytesPerOp", "mopsPerSec", "name", "nsPerOp", "samplesNsPerOp", "threads"], row.EnumerateObject().Select(p => p.Name).Order());
            Assert.Equal(10, row.GetProperty("samplesNsPerOp").GetArrayLength());
            Assert.True(row.GetProperty("nsPerOp").GetDouble() > 0);
            Assert.Equal(1000 / row.GetProperty("nsPerOp").GetDouble(), row.GetProperty("mopsPerSec").GetDouble(), 6);
            AssertNoOperationAllocates(row);
        }
        Assert.Equal(2, rows[1].GetProperty("threads").GetInt32());
    }

    [Fact]
    public void TheThrashAndDmaWorkloadsReportTheirHitRate()
    {
        var (code, output, _) = Run("bench", "--workload", "iotlb-thrash", "dma-strict", "--json", "--quick");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        foreach (JsonElement row in doc.RootElement.GetProperty("workloads").EnumerateArray())
        {
            Assert.StartsWith("hit rate", row.GetProperty("note").GetString());
            // The hit rate as a number too (a key readers of version 1 ignore): 0..1.
            Assert.InRange(row.GetProperty("iotlbHitRate").GetDouble(), 0.0, 1.0);
        }
        Assert.InRange(doc.RootElement.GetProperty("workloads")[1].GetProperty("iotlbHitRate").GetDouble(), 0.10, 0.15);
    }

    [Fact]
    public void MoreThreadsThanCoresAreWarnedAbout()
    {
        int threads = Environment.ProcessorCount + 1;
        var (code, _, error) = Run("bench", "--workload", "iotlb-hit-mt", "--threads", threads.ToString(System.Globalization.CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, error);
        Assert.Contains($"warning: iotlb-hit-mt on {threads} threads, more than the {Environment.ProcessorCount} cores here", error);
    }

    [Fact]
    public void ThreadsWithinTheCoresAreNotWarnedAbout()
    {
        var (code, _, error) = Run("bench", "--workload", "iotlb-hit-mt", "--threads", "1", "--json");
        Assert.True(code == 0, error);
        Assert.DoesNotContain("warning", error);
    }

    [Theory]
    [InlineData("--workload", "nope", "nope")]
    [InlineData("--threads", "0", "--threads")]
    public void BadArgumentsExitWith2AndNameTheArgument(string option, string value, string named)
    {
        var (code, _, error) = Run("bench", option, value);
        Assert.Equal(2, code);
        Assert.Contains(named, error);
    }

    [Fact]
    public void TheBatchWalkerCanBeForcedAndTheBatchRowsNoteSaysWhichRan()
    {
        BatchWalkerKind kind = PageWalker.SupportedBatchWalkers[^1];
        {
            var (code, output, error) = Run("bench", "--workload", "walk-hot-batch", "--batch-walker", kind.Name(), "--json");
            Assert.True(code == 0, error);
            using var doc = JsonDocument.Parse(output);
            JsonElement row = doc.RootElement.GetProperty("workloads")[0];
            Assert.Equal(kind.Name(), doc.RootElement.GetProperty("environment").GetProperty("batchWalker").GetString());
            Assert.Equal(["allocatedBytesPerOp", "mopsPerSec", "name", "note", "nsPerOp", "samplesNsPerOp", "threads"], row.EnumerateObject().Select(p => p.Name).Order());
            Assert.Equal("walk-hot-batch", row.GetProperty("name").GetString());
            Assert.Equal($"batch walker {kind.Name()} (forced)", row.GetProperty("note").GetString());
            AssertNoOperationAllocates(row);
        }
    }

    [Theory]
    [InlineData("avx1024")]
    [InlineData("gather")]
    [InlineData("")]
    public void AnUnknownBatchWalkerExitsWith2AndListsTheChoices(string value)
    {
        var (code, output, error) = Run("bench", "--workload", "walk-hot-batch", "--batch-walker", value);
        Assert.Equal(2, code);
        Assert.Contains("--batch-walker", error);
        Assert.Contains("interleaved|avx2|avx512|avx512-loads|auto", error);
        Assert.Equal("", output);
    }

    [Fact]
    [Trait("Category", "Simd")] // runs again in the ISA legs of .ci/run, where some walkers are missing
    public void AnUnsupportedBatchWalkerExitsWith2AndSaysWhatIsSupported()
    {
        BatchWalkerKind[] missing = [.. BatchWalkerKinds.All.Where(k => !PageWalker.IsBatchWalkerSupported(k))];
        Assert.SkipWhen(missing.Length == 0, "this CPU and runtime support every batch walker");
        foreach (BatchWalkerKind kind in missing)
        {
            var (code, _, error) = Run("bench", "--workload", "walk-hot-batch", "--batch-walker", kind.Name());
            Assert.Equal(2, code);
            Assert.Contains($"--batch-walker {kind.Name()}: this CPU", error);
            Assert.Contains("supported here: interleaved", error);
        }
    }

    [Fact]
    public void EveryCatalogNameMakesAWorkloadAndUnknownNamesAreRefused()
    {
        foreach (string name in WorkloadCatalog.Names)
        {
            using Workload w = WorkloadCatalog.Create(name, 2);
            Assert.Equal(name, w.Name);
            Assert.False(string.IsNullOrWhiteSpace(w.Description));
        }
        Assert.Contains("known:", Assert.Throws<ArgumentException>(() => WorkloadCatalog.Create("x", 1)).Message);
    }
}
