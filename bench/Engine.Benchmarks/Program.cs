using BenchmarkDotNet.Running;
using Engine.Workloads;

namespace Engine.Benchmarks;

public static class Program
{
    public static void Main(string[] args)
    {
        MappedGuest.Log = Console.WriteLine;
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
