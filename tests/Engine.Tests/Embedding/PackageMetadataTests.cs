using System.Xml.Linq;

namespace Engine.Tests.Embedding;

// dotnet pack itself is too slow for the suite; the metadata it reads is checked instead.
public class PackageMetadataTests
{
    private static string Property(XDocument project, string name) =>
        project.Descendants(name).SingleOrDefault()?.Value ?? "";

    [Fact]
    public void TheLibraryPackageHasAnIdLicenceReadmeDocsAndSymbols()
    {
        XDocument project = XDocument.Load(RepositoryFiles.PathOf("src/Engine/Engine.csproj"));
        string id = Property(project, "PackageId");
        Assert.False(string.IsNullOrWhiteSpace(id), "src/Engine/Engine.csproj sets no PackageId");
        Assert.NotEqual("Engine", id);
        Assert.NotEqual("", Property(project, "Authors"));
        Assert.NotEqual("", Property(project, "PackageDescription"));
        Assert.Equal("MIT", Property(project, "PackageLicenseExpression"));
        Assert.Equal("true", Property(project, "GenerateDocumentationFile"));
        Assert.Equal("true", Property(project, "IncludeSymbols"));
        Assert.Equal("snupkg", Property(project, "SymbolPackageFormat"));
        Assert.Equal("README.md", Property(project, "PackageReadmeFile"));
        XElement readme = project.Descendants("None").Single(e => (string?)e.Attribute("PackagePath") == "README.md");
        Assert.True(File.Exists(RepositoryFiles.PathOf(Path.Combine("src/Engine", (string)readme.Attribute("Include")!))), "the package README file is missing");
    }

    [Fact]
    public void TheCliStaysADotnetToolCalledEngine()
    {
        XDocument project = XDocument.Load(RepositoryFiles.PathOf("src/Engine.Cli/Engine.Cli.csproj"));
        Assert.Equal("true", Property(project, "PackAsTool"));
        Assert.Equal("engine", Property(project, "ToolCommandName"));
        Assert.StartsWith("VtdEngine", Property(project, "PackageId"));
        Assert.NotEqual("", Property(project, "Authors"));
        Assert.Equal("MIT", Property(project, "PackageLicenseExpression"));
    }

    [Fact]
    public void TheRepositoryCarriesTheLicenceThePackagesName()
    {
        string licence = File.ReadAllText(RepositoryFiles.PathOf("LICENSE"));
        Assert.StartsWith("MIT License", licence);
    }
}
