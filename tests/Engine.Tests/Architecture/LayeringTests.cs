using System.Text.RegularExpressions;

namespace Engine.Tests.Architecture;

// DESIGN.md's layer table: Memory ← Paging ← Kvm/Iommu ← Control ← Dma, Diagnostics reading
// Control/Iommu/Kvm. A source scan rather than reflection so the failure names the file.
public partial class LayeringTests
{
    private static readonly Dictionary<string, string[]> Allowed = new()
    {
        ["Memory"] = [],
        ["Paging"] = ["Memory"],
        ["Kvm"] = ["Memory", "Paging"],
        ["Iommu"] = ["Memory", "Paging"],
        ["Control"] = ["Memory", "Paging", "Kvm", "Iommu"],
        ["Dma"] = ["Memory", "Paging", "Kvm", "Iommu", "Control"],
        ["Diagnostics"] = ["Memory", "Paging", "Kvm", "Iommu", "Control"],
    };

    // Upward references that exist today, kept visible here rather than refactored in a test commit.
    private static readonly HashSet<string> KnownExceptions = [];

    [GeneratedRegex(@"\bEngine\.(Memory|Paging|Kvm|Iommu|Control|Dma|Diagnostics)\b")]
    private static partial Regex Reference();

    private static string EngineSource()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "src", "Engine");
            if (File.Exists(Path.Combine(dir.FullName, "Engine.sln")) && Directory.Exists(candidate))
                return candidate;
        }
        throw new DirectoryNotFoundException("src/Engine not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void EachLayerReferencesOnlyTheLayersBelowIt()
    {
        string root = EngineSource();
        var violations = new List<string>();
        foreach (var (layer, allowed) in Allowed)
        {
            string dir = Path.Combine(root, layer);
            Assert.True(Directory.Exists(dir), $"layer folder {layer} is missing; update the layer table");
            foreach (string file in Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories))
            {
                string[] lines = File.ReadAllLines(file);
                for (int i = 0; i < lines.Length; i++)
                {
                    foreach (Match m in Reference().Matches(lines[i]))
                    {
                        string target = m.Groups[1].Value;
                        if (target == layer || allowed.Contains(target))
                            continue;
                        string rel = Path.GetRelativePath(root, file).Replace('\\', '/');
                        if (!KnownExceptions.Contains($"{rel} -> {target}"))
                            violations.Add($"{rel}:{i + 1}: {layer} references Engine.{target}: {lines[i].Trim()}");
                    }
                }
            }
        }
        Assert.True(violations.Count == 0, "upward references:\n" + string.Join('\n', violations));
    }
}

/// <summary>
/// Paging is the pure layer: its walkers are functions of their arguments. A static field it could
/// write (a cached choice, a counter) would be shared by every platform in the process.
/// </summary>
public class PagingStateTests
{
    [Fact]
    public void PagingHasNoWritableStaticFields()
    {
        const System.Reflection.BindingFlags Statics = System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public
            | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.DeclaredOnly;
        string[] writable = [.. typeof(Engine.Paging.PageWalker).Assembly.GetTypes()
            .Where(t => t.Namespace == "Engine.Paging" && !t.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute), false))
            .SelectMany(t => t.GetFields(Statics).Where(f => !f.IsInitOnly && !f.IsLiteral).Select(f => $"{t.FullName}.{f.Name}"))];
        Assert.True(writable.Length == 0, $"Engine.Paging holds writable static state: {string.Join(", ", writable)}");
    }
}
