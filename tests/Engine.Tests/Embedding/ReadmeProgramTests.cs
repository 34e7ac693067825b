using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Engine.Tests.Embedding;

// The program swaps Console.Out, which is process-wide: nothing may run beside it.
[CollectionDefinition(nameof(ReadmeProgramCollection), DisableParallelization = true)]
public sealed class ReadmeProgramCollection;

/// <summary>
/// The README's "Embedding from .NET" program is compiled with Roslyn against this build's Engine.dll
/// and run; its output must be the block the README says it prints. So neither can drift from the API.
/// </summary>
[Collection(nameof(ReadmeProgramCollection))]
public class ReadmeProgramTests
{
    private const string Heading = "## Embedding from .NET";

    // What `dotnet new console` turns on (ImplicitUsings): the README program is a Program.cs of such a project.
    private const string ImplicitUsings = """
        global using System;
        global using System.Collections.Generic;
        global using System.IO;
        global using System.Linq;
        global using System.Net.Http;
        global using System.Threading;
        global using System.Threading.Tasks;
        """;

    [Fact]
    public void TheEmbeddingProgramCompilesWithoutWarningsAndPrintsWhatTheReadmeSays()
    {
        (string program, string expected) = ReadSection(RepositoryFiles.Read("README.md"));
        Assembly assembly = Compile(program);
        string output = Run(assembly);
        Assert.Equal(expected.ReplaceLineEndings("\n"), output.ReplaceLineEndings("\n"));
    }

    [Fact]
    public void TheSectionIsFoundWhereTheReadmePutsIt()
    {
        string readme = RepositoryFiles.Read("README.md");
        Assert.True(readme.IndexOf("## What is here", StringComparison.Ordinal) < readme.IndexOf(Heading, StringComparison.Ordinal),
            "the embedding section must follow \"What is here\"");
        Assert.Throws<InvalidOperationException>(() => ReadSection(readme.Replace(Heading, "## Something else", StringComparison.Ordinal)));
    }

    /// <summary>The first ```csharp block under the heading, and the first plain ``` block after it (the output).</summary>
    internal static (string Program, string Output) ReadSection(string readme)
    {
        string[] lines = readme.ReplaceLineEndings("\n").Split('\n');
        int start = Array.IndexOf(lines, Heading);
        if (start < 0)
            throw new InvalidOperationException($"README.md has no \"{Heading}\" heading.");
        int end = Array.FindIndex(lines, start + 1, l => l.StartsWith("## ", StringComparison.Ordinal));
        if (end < 0)
            end = lines.Length;
        string program = Block(lines, start, end, "```csharp", out int after);
        string output = Block(lines, after, end, "```", out _);
        return (program, output);
    }

    private static string Block(string[] lines, int from, int to, string fence, out int after)
    {
        int open = Array.FindIndex(lines, from, to - from, l => l == fence);
        if (open < 0)
            throw new InvalidOperationException($"The \"{Heading}\" section has no {fence} block where one is expected.");
        int close = Array.FindIndex(lines, open + 1, to - open - 1, l => l == "```");
        if (close < 0)
            throw new InvalidOperationException($"A {fence} block in \"{Heading}\" is not closed.");
        after = close + 1;
        return string.Join('\n', lines[(open + 1)..close]) + "\n";
    }

    private static Assembly Compile(string program)
    {
        var parse = new CSharpParseOptions(LanguageVersion.Latest);
        SyntaxTree[] trees =
        [
            CSharpSyntaxTree.ParseText(program, parse, path: "README.md"),
            CSharpSyntaxTree.ParseText(ImplicitUsings, parse, path: "ImplicitUsings.cs"),
        ];
        // The running process's assemblies: the runtime's, and this build's Engine.dll.
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!)
            .Split(Path.PathSeparator)
            .Select(path => MetadataReference.CreateFromFile(path))
            .ToList();
        Assert.Contains(references, r => Path.GetFileName(r.FilePath) == Path.GetFileName(typeof(Engine.Control.Platform).Assembly.Location));
        var compilation = CSharpCompilation.Create("ReadmeProgram", trees, references,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
        using var image = new MemoryStream();
        var result = compilation.Emit(image);
        // Warnings count as in the repository's builds; CS1701/1702 are binding-redirect notes that
        // only appear because the references are implementation assemblies, not reference packs.
        Diagnostic[] problems = [.. result.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning && d.Id is not ("CS1701" or "CS1702"))];
        Assert.True(result.Success && problems.Length == 0,
            "The README's embedding program does not compile cleanly:\n" + string.Join('\n', problems.Select(d => d.ToString())));
        image.Position = 0;
        // Collectible, so the test leaves nothing loaded; Engine resolves to the assembly already loaded.
        return new AssemblyLoadContext("ReadmeProgram", isCollectible: true).LoadFromStream(image);
    }

    private static string Run(Assembly assembly)
    {
        MethodInfo main = assembly.EntryPoint ?? throw new InvalidOperationException("The README program has no entry point.");
        TextWriter console = Console.Out;
        var output = new StringWriter();
        Console.SetOut(output);
        try
        {
            object?[]? args = main.GetParameters().Length == 0 ? null : [Array.Empty<string>()];
            object? returned = main.Invoke(null, args);
            if (returned is Task task)
                task.GetAwaiter().GetResult();
        }
        finally
        {
            Console.SetOut(console);
        }
        return output.ToString();
    }
}
