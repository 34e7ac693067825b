#pragma warning disable CS1591 // a harness for benchmarks, documented at the type level
using System.Runtime.InteropServices;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Workloads;

/// <summary>
/// walk-hot-embedder: walk-hot's table, copied into memory the harness owns and registers as
/// embedder RAM (bring your own RAM), walked through the same entry point. Set beside walk-hot it
/// shows what a table in embedder RAM costs against one in Engine's own region.
/// </summary>
public sealed unsafe class EmbedderWalkWorkload : Workload
{
    // Far above Engine's region (which ends below 8 GiB for the hot set) and inside 46 bits.
    private const ulong EmbedderHpa = 0x1000_0000_0000UL;
    private MappedGuest? _guest;
    private byte* _ram;
    private ulong _rootHpa;
    private ulong[] _iovas = [];
    private ulong _expected;

    public override string Name => "walk-hot-embedder";

    public override string Description => "walk-hot's table copied into embedder RAM (Platform.AddRam), 262,144 random IOVAs, scalar walker";

    public override long OperationsPerPass => _iovas.Length;

    public override void Setup()
    {
        _guest = new MappedGuest(AnchorInputs.HotGiB, transparentHugePages: true);
        _iovas = AnchorInputs.Iovas(AnchorInputs.HotGiB, AnchorInputs.HotIovaCount);
        _expected = _guest.Verify(_iovas);
        HostMemory memory = _guest.Memory;

        // Count the table frames, then copy them into one buffer, relocating every table pointer.
        var tables = new List<(ulong Hpa, int Level)>();
        Collect(memory, _guest.RootHpa, _guest.Levels, tables);
        ulong bytes = (ulong)tables.Count * HostMemory.FrameSize;
        _ram = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 2 << 20);
        var moved = new Dictionary<ulong, ulong>(tables.Count);
        for (int i = 0; i < tables.Count; i++)
            moved[tables[i].Hpa] = EmbedderHpa + (ulong)i * HostMemory.FrameSize;
        for (int i = 0; i < tables.Count; i++)
        {
            ulong* to = (ulong*)(_ram + (ulong)i * HostMemory.FrameSize);
            for (int e = 0; e < PageSizes.EntriesPerTable; e++)
            {
                ulong entry = memory.ReadEntry(tables[i].Hpa + (ulong)e * 8);
                if (tables[i].Level > 1 && entry != 0 && moved.TryGetValue(entry & EptEntry.AddressMask, out ulong child))
                    entry = (entry & ~EptEntry.AddressMask) | child;
                to[e] = entry;
            }
        }
        memory.AddEmbedderRegion(EmbedderHpa, (nint)_ram, bytes);
        _rootHpa = moved[_guest.RootHpa];
        ulong sum = 0;
        WalkerConfig config = _guest.Config;
        using (memory.Epochs.Enter())
        {
            foreach (ulong iova in _iovas)
                sum += PageWalker.WalkReference(memory, config, _rootHpa, _guest.Levels, iova, Access.Read).Hpa;
        }
        if (sum != _expected)
            throw new InvalidOperationException($"{Name}: the copied table translates to checksum 0x{sum:x}, the original to 0x{_expected:x}.");
    }

    private static void Collect(HostMemory memory, ulong table, int level, List<(ulong, int)> tables)
    {
        tables.Add((table, level));
        if (level == 1)
            return;
        for (int e = 0; e < PageSizes.EntriesPerTable; e++)
        {
            ulong entry = memory.ReadEntry(table + (ulong)e * 8);
            if ((entry & 7) != 0 && (entry & (1UL << 7)) == 0)
                Collect(memory, entry & EptEntry.AddressMask, level - 1, tables);
        }
    }

    public override ulong RunPass()
    {
        MappedGuest g = _guest!;
        WalkerConfig config = g.Config;
        ulong sum = 0;
        using (g.Memory.Epochs.Enter())
        {
            var walker = new BoundWalker(g.Memory, config, _rootHpa, g.Levels);
            foreach (ulong iova in _iovas)
                sum += walker.Walk(iova, Access.Read).Hpa;
        }
        if (sum != _expected)
            throw new InvalidOperationException($"{Name}: checksum 0x{sum:x}, verified 0x{_expected:x}.");
        return sum;
    }

    public override void Dispose()
    {
        _guest?.Dispose();
        if (_ram != null)
            NativeMemory.AlignedFree(_ram);
        _ram = null;
        base.Dispose();
    }
}
