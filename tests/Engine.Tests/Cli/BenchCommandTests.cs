using System.Text.Json;
using Engine.Cli;
using Engine.Workloads;

namespace Engine.Tests.Cli;

public class BenchCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        return (Program.Run(args, output, error), output.ToString(), error.ToString());
    }

    [Fact]
    public void JsonRowsHaveTheContractKeysAndAllocateNothing()
    {
        var (code, output, error) = Run("bench", "--workload", "inval-domain", "iotlb-hit-mt", "--threads", "2", "--json");
        Assert.True(code == 0, error);
        using var doc = JsonDocument.Parse(output);
        JsonElement[] rows = [.. doc.RootElement.EnumerateArray()];
        Assert.Equal(["inval-domain", "iotlb-hit-mt"], rows.Select(r => r.GetProperty("name").GetString()));
        foreach (JsonElement row in rows)
        {
            Assert.Equal(["allocatedBytesPerOp", "mopsPerSec", "name", "nsPerOp", "threads"], row.EnumerateObject().Select(p => p.Name).Order());
            Assert.True(row.GetProperty("nsPerOp").GetDouble() > 0);
            Assert.Equal(1000 / row.GetProperty("nsPerOp").GetDouble(), row.GetProperty("mopsPerSec").GetDouble(), 6);
            Assert.Equal(0, row.GetProperty("allocatedBytesPerOp").GetDouble());
        }
        Assert.Equal(2, rows[1].GetProperty("threads").GetInt32());
    }

    [Fact]
    public void TheThrashWorkloadReportsItsHitRate()
    {
        var (code, output, _) = Run("bench", "--workload", "iotlb-thrash", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.StartsWith("hit rate", doc.RootElement[0].GetProperty("note").GetString());
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
