namespace Engine.Tests;

/// <summary>
/// Asserts that code allocates nothing once warm. A round may still see a one-time allocation on the
/// calling thread (the runtime's tiering installs recompiled code while it runs, sooner or later on a
/// loaded machine), so the claim is that some round, of up to five, allocates nothing at all.
/// </summary>
internal static class SteadyStateAllocation
{
    /// <summary>Runs <paramref name="round"/> up to five times; fails naming each round's bytes when every one allocated.</summary>
    public static void AssertSomeRoundAllocatesNothing(Action round, string what)
    {
        var rounds = new List<long>();
        for (int r = 0; r < 5 && (rounds.Count == 0 || rounds[^1] != 0); r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            round();
            rounds.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.True(rounds[^1] == 0, $"every round of {what} allocated: {string.Join(", ", rounds)} bytes");
    }
}
