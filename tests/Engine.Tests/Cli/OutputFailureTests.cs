using System.Text;
using Engine.Cli;

namespace Engine.Tests.Cli;

public class OutputFailureTests
{
    /// <summary>Refuses every write as a full disk does (`engine … > /dev/full`).</summary>
    private sealed class FullWriter : TextWriter
    {
        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value) => throw new IOException("No space left on device");

        public override void Write(string? value) => throw new IOException("No space left on device");

        public override void WriteLine(string? value) => throw new IOException("No space left on device");
    }

    [Theory]
    [InlineData("run --seconds 0.1 --threads 2 --json")]
    [InlineData("run --seconds 0.1 --threads 1")]
    [InlineData("caps decode --cap 0 --ecap 0")]
    [InlineData("kvm-check --cap 0 --ecap 0 --level 4 --max-huge-page-level 1 --json")]
    public void AnOutputThatRefusesWritesExitsWith4AndSaysWhy(string commandLine)
    {
        var error = new StringWriter();
        int code = Program.Run(commandLine.Split(' '), new FullWriter(), error);
        Assert.Equal(Program.ExitOutputFailed, code);
        // Progress lines may come first: how many depends on the machine, the last line does not.
        Assert.EndsWith(Environment.NewLine + "engine: could not write the output: No space left on device" + Environment.NewLine, Environment.NewLine + error);
    }

    [Fact]
    public void NoWriterAtAllStillGivesTheExitCode()
    {
        int code = Program.Run(["caps", "decode", "--cap", "0", "--ecap", "0"], new FullWriter(), new FullWriter());
        Assert.Equal(Program.ExitOutputFailed, code);
    }
}
