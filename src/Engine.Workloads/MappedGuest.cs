using System.Diagnostics;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

#pragma warning disable CS1591 // a harness for benchmarks, documented at the type level

namespace Engine.Workloads;

/// <summary>
/// A VM whose first <c>gib</c> GiB of guest-physical memory are mapped with 4 KiB EPT leaves, and
/// the IOMMU's view of its exported table: the walk-hot / walk-cold working sets of the anchors.
/// </summary>
/// <remarks>
/// The memslot is backed by 1 GiB chunks (few contiguous allocations, fast setup) while
/// <see cref="VmOptions.MaxHugePageLevel"/> = 1 makes every mapping a 4 KiB leaf. Backing frames are
/// only reserved, never touched; the walker reads nothing but table frames. Table frames come from
/// the frames skipped to align the first 1 GiB chunk, so host memory needs one spare GiB.
/// </remarks>
public sealed class MappedGuest : IDisposable
{
    private readonly Vm _vm;
    private readonly KvmTdpFd _export;
    private readonly Memslot _slot;

    /// <summary>Where setup progress lines go (BenchmarkDotNet prints them; the CLI does not).</summary>
    public static Action<string>? Log { get; set; }

    public MappedGuest(ulong gib, bool transparentHugePages)
    {
        var sw = Stopwatch.StartNew();
        Memory = new HostMemory(new HostMemoryOptions { Size = (gib + 2) << 30, TransparentHugePages = transparentHugePages });
        _vm = new Vm(Memory, new VmOptions { TdpLevels = 4, MaxHugePageLevel = 1, Name = $"bench-{gib}g" });
        _slot = _vm.AddMemslot(0, 0, gib << 30, PageSize.Size1G);
        _vm.Map(0, (gib << 30) >> HostMemory.FrameShift, Access.All);
        _export = _vm.ExportTdp();
        RootHpa = _export.Metadata.RootHpa;
        Levels = _export.Metadata.Level;
        Config = WalkerConfig.SecondStage(Memory.HostAddressWidth, superpageLevel: 2);
        HostMemoryStatistics stats = Memory.Statistics;
        Log?.Invoke($"// {gib} GiB mapped by 4K leaves in {sw.Elapsed.TotalSeconds:F1} s; THP hint {transparentHugePages}; "
            + $"frames in use {stats.FramesInUse:N0}, table frames {_vm.Tdp.Statistics.TablePages:N0}");
    }

    public HostMemory Memory { get; }

    public ulong RootHpa { get; }

    public int Levels { get; }

    internal WalkerConfig Config { get; }

    /// <summary>
    /// Walks every IOVA once and checks it against the memslot's backing: a 4 KiB leaf at the
    /// expected HPA with R/W. Throws on the first mismatch, so a broken setup is never timed.
    /// </summary>
    /// <returns>The sum of the translated HPAs (the checksum the benchmark must reproduce).</returns>
    public ulong Verify(ulong[] iovas)
    {
        ulong sum = 0;
        WalkerConfig config = Config;
        using (Memory.Epochs.Enter())
        {
            for (int i = 0; i < iovas.Length; i++)
            {
                ulong iova = iovas[i];
                WalkResult r = PageWalker.Walk(Memory, in config, RootHpa, Levels, iova, Access.Read);
                ulong expected = _slot.PeekHpa(iova >> HostMemory.FrameShift) | (iova & (HostMemory.FrameSize - 1));
                if (!r.IsSuccess || r.Hpa != expected || r.Level != 1 || r.Permissions != Access.ReadWrite)
                    throw new InvalidOperationException($"walk {i} of IOVA 0x{iova:x}: got {r}, expected 0x{expected:x} (4K, ReadWrite).");
                sum += r.Hpa;
            }
        }
        return sum;
    }

    public void Dispose()
    {
        _export.Dispose();
        _vm.Dispose();
        Memory.Dispose();
    }
}
