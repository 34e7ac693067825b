namespace Engine.Tests.Embedding;

/// <summary>Files of the repository the tests run from (found by walking up to Engine.sln).</summary>
internal static class RepositoryFiles
{
    public static string Root { get; } = FindRoot();

    public static string PathOf(string relative) => Path.Combine(Root, relative);

    public static string Read(string relative) => File.ReadAllText(PathOf(relative));

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Engine.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"No Engine.sln above {AppContext.BaseDirectory}: the tests must run from inside the repository.");
    }
}
