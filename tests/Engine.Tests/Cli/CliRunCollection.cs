namespace Engine.Tests.Cli;

/// <summary>
/// CLI tests that run whole scenarios, alone rather than beside other tests: the soak reads
/// process-wide figures (the engine's native bytes, RSS) that any other test's platform would
/// move, and the runs start up to 256 threads on a machine of a few cores and JIT a great deal
/// of new code, which starves the tests that check a warmed-up loop allocates nothing (their
/// loop is still tier-0 code when they measure it).
/// </summary>
[CollectionDefinition(nameof(CliRunCollection), DisableParallelization = true)]
public sealed class CliRunCollection;
