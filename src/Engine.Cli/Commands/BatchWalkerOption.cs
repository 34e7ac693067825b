using System.CommandLine;
using Engine.Paging;

namespace Engine.Cli.Commands;

/// <summary><c>--batch-walker NAME</c>: a batch walker by name, checked against what this CPU runs (<c>auto</c>: the process default).</summary>
internal static class BatchWalkerOption
{
    public static Option<string> Create(string description)
    {
        var option = new Option<string>("--batch-walker") { Description = description };
        option.Validators.Add(r =>
        {
            if (r.Tokens.Count != 1 || string.Equals(r.Tokens[0].Value, BatchWalkerKinds.Auto, StringComparison.OrdinalIgnoreCase))
                return;
            string value = r.Tokens[0].Value;
            if (!BatchWalkerKinds.TryParse(value, out BatchWalkerKind kind))
                r.AddError($"--batch-walker: '{value}' is not a batch walker; use one of {BatchWalkerKinds.Names}.");
            else if (!PageWalker.IsBatchWalkerSupported(kind))
                r.AddError($"--batch-walker {value}: this CPU (or the runtime's DOTNET_Enable* settings) does not support it; supported here: {string.Join(", ", PageWalker.SupportedBatchWalkers.Select(k => k.Name()))}.");
        });
        return option;
    }
}
