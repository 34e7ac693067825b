using System.Buffers.Binary;
using System.Numerics;
using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;
using Engine.Tests.Memory;

namespace Engine.Tests.Checkpoint;

/// <summary>A platform with KVM domains, IOTLB and context-cache contents, faults, page requests and guest data.</summary>
internal static class CheckpointRig
{
    public static Platform Build()
    {
        var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 1UL << 30 } });
        IommuInstance dmar0 = platform.AddIommu("dmar0", IommuPresets.GraniteRapidsServer);
        IommuInstance dmar1 = platform.AddIommu("dmar1", new DmarUnitOptions { Cap = IommuPresets.GraniteRapidsServer.Cap, Ecap = IommuPresets.GraniteRapidsServer.Ecap, IotlbSets = 64 });
        Device nic = platform.AddDevice("nic", 0x17, 0, 0, dmar0, DeviceAbilities.Ats | DeviceAbilities.Pri);
        Device nvme = platform.AddDevice("nvme", 0x18, 0, 0, dmar1);
        platform.AddDevice("idle", 0x19, 0, 0, dmar1);
        Vm vm = platform.CreateVm(new VmOptions { TdpLevels = 5, Name = "guest" });
        vm.AddMemslot(0, 0, 64UL << 20, PageSize.Size2M);
        vm.AddMemslot(1, 64UL << 20, 16UL << 20, PageSize.Size4K);
        vm.MapGpa(0, 80UL << 20, Access.ReadWrite);
        KvmDomain domain = platform.AttachKvmDomain(nic, vm.ExportTdp());
        domain.Attach(nvme, AttachFlags.AllowWithoutPageRequests);
        return platform;
    }

    /// <summary>Traffic and KVM changes driven by <paramref name="seed"/>; every result goes into the returned lines.</summary>
    public static List<string> Drive(Platform platform, ulong seed, int steps)
    {
        Device nic = platform.Devices.Single(d => d.Name == "nic"), nvme = platform.Devices.Single(d => d.Name == "nvme");
        Vm vm = ((KvmDomain)nic.Domain!).Tdp.Vm;
        var lines = new List<string>();
        ulong state = seed;
        ulong Next()
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            return z ^ (z >> 27);
        }
        var buffer = new byte[6000];
        for (int i = 0; i < steps; i++)
        {
            const ulong End = 80UL << 20;
            ulong gpa = (Next() % End) & ~7UL;
            ulong Pages(ulong most) => Math.Min(1 + Next() % most, (End - (gpa & ~0xFFFUL)) >> 12);
            switch (Next() % 8)
            {
                case 0:
                    vm.ZapGpa(gpa & ~0xFFFUL, 0x1000 * Pages(4));
                    break;
                case 1:
                    vm.WriteProtect(gpa >> 12, Pages(16));
                    break;
                case 2:
                    buffer.AsSpan().Fill((byte)i);
                    lines.Add($"nic write {gpa:x}: {nic.DmaWrite(gpa, buffer.AsSpan(0, 1 + (int)(Next() % 6000)))}");
                    break;
                case 3:
                    lines.Add($"nvme read {gpa:x}: {nvme.DmaRead(gpa, buffer.AsSpan(0, 512))} {Convert.ToHexString(buffer.AsSpan(0, 16))}");
                    break;
                case 4:
                    vm.Map(gpa >> 12, Pages(600), Access.ReadWrite);
                    break;
                default:
                    Device d = (Next() & 1) == 0 ? nic : nvme;
                    TranslationResult t = d.Translate(gpa, (Next() & 1) == 0 ? Access.Read : Access.Write);
                    lines.Add($"{d.Name} translate {gpa:x}: {t.Status} {t.Hpa:x} {t.Size} {t.Permissions} {t.Fault} hit={t.IotlbHit}");
                    break;
            }
        }
        lines.AddRange(Digest(platform));
        return lines;
    }

    /// <summary>Everything a user can observe that a checkpoint must carry.</summary>
    public static IEnumerable<string> Digest(Platform platform)
    {
        yield return $"memory {platform.Memory.Statistics}";
        foreach (IommuInstance i in platform.Iommus)
        {
            DmarUnit u = i.Unit;
            yield return $"{i.Name}: misses {u.IotlbMisses} context misses {u.ContextMisses} faults {u.Faults} recorder {u.FaultRecorder.Counters} TE {u.TranslationEnabled} root {u.RootTableAddress:x} ccgen {u.ContextCacheGeneration}";
            foreach (int offset in u.Registers.Declarations.Keys.Order())
                yield return $"{i.Name} reg {offset:x}: {u.Registers.Get(offset):x}";
        }
        foreach (Device d in platform.Devices)
            yield return $"{d.Name}: domain {d.Domain?.Kind} did {(d.Domain is null ? -1 : d.Iommu!.DidOf(d.Domain))} pri {d.PageRequestsEnabled} requests {d.PageRequests} devtlb {d.DeviceTlbInvalidations}";
        foreach (Vm vm in platform.Vms)
            yield return $"{vm.Name}: {vm.Tdp.Statistics} slots {string.Join(",", vm.Memslots.Select(s => s.TouchedChunks))}";
        KvmDomain kvm = (KvmDomain)platform.Devices.First(d => d.Domain is not null).Domain!;
        yield return $"kvm domain: {kvm.Invalidations} {kvm.PageRequestsServed} {kvm.PageRequestsFailed}";
    }

    /// <summary>(tag, offset of the section header, body length) of every section of a platform checkpoint.</summary>
    public static List<(string Tag, int Offset, int Length)> Sections(byte[] bytes)
    {
        var sections = new List<(string, int, int)>();
        for (int at = 16; at < bytes.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 4));
            sections.Add((System.Text.Encoding.ASCII.GetString(bytes, at, 4), at, length));
            at += 8 + length + 4;
        }
        return sections;
    }

    /// <summary>Recomputes a section's CRC after a test changed its body on purpose.</summary>
    public static void FixCrc(byte[] bytes, int sectionOffset, int length)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes.AsSpan(sectionOffset, 8 + length))
            crc = BitOperations.Crc32C(crc, b);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(sectionOffset + 8 + length), ~crc);
    }
}

public class PlatformCheckpointTests
{
    [Fact]
    public void ALoadedPlatformDoesWhatTheSavedOneWouldHaveDone()
    {
        using Platform original = CheckpointRig.Build();
        CheckpointRig.Drive(original, seed: 1, steps: 3000);
        var saved = new MemoryStream();
        original.Save(saved);
        List<string> atSave = [.. CheckpointRig.Digest(original)];
        saved.Position = 0;
        using Platform loaded = Platform.Load(saved);
        Assert.Equal(atSave, CheckpointRig.Digest(loaded));
        List<string> expected = CheckpointRig.Drive(original, seed: 2, steps: 3000);
        List<string> actual = CheckpointRig.Drive(loaded, seed: 2, steps: 3000);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i] == actual[i], $"line {i}: the saved platform gave\n  {expected[i]}\nthe loaded one\n  {actual[i]}");
        Assert.Equal(expected.Count, actual.Count);
        Assert.Contains(expected, l => l.Contains("hit=True", StringComparison.Ordinal));     // the IOTLB carried over: hits right after the load
        Assert.Contains(expected, l => l.Contains("Faulted", StringComparison.Ordinal));
    }

    [Fact]
    public void SavingTwiceWritesTheSameBytesAndALoadedPlatformSavesThemAgain()
    {
        using Platform original = CheckpointRig.Build();
        CheckpointRig.Drive(original, seed: 3, steps: 500);
        var first = new MemoryStream();
        var second = new MemoryStream();
        original.Save(first);
        original.Save(second);
        Assert.Equal(first.ToArray(), second.ToArray());
        first.Position = 0;
        using Platform loaded = Platform.Load(first);
        var third = new MemoryStream();
        loaded.Save(third);
        Assert.Equal(first.ToArray(), third.ToArray());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PagingDomainsComeBackWithTheirMappingsAndIotlbInEitherMode(bool scalable)
    {
        using var original = new Platform(new PlatformOptions { ScalableModeEnabled = scalable, Memory = new HostMemoryOptions { Size = 256UL << 20 } });
        IommuInstance iommu = original.AddIommu("dmar0", IommuPresets.GraniteRapidsServer);
        Device a = original.AddDevice("a", 1, 0, 0, iommu), b = original.AddDevice("b", 2, 0, 0, iommu);
        PagingDomain domain = original.AllocatePagingDomain(a);
        domain.Attach(a);
        domain.Attach(b);
        ulong buffer = original.Memory.AllocateContiguous(1024, 512);
        domain.Map(0x4000_0000, buffer, 2UL << 20, Access.ReadWrite);
        domain.Map(0x1000, buffer + 0x5000, 0x3000, Access.Read);
        string Probe(Platform p)
        {
            var lines = new List<string>();
            foreach (Device d in p.Devices)
            {
                foreach (ulong iova in new ulong[] { 0x1000, 0x2fff, 0x4000, 0x4000_0000, 0x401f_f000, 0x4020_0000 })
                {
                    TranslationResult t = d.Translate(iova, Access.Write);
                    TranslationResult r = d.Translate(iova, Access.Read);
                    lines.Add($"{d.Name} {iova:x}: {t.Status} {t.Fault} | {r.Status} {r.Hpa:x} {r.Size} hit={r.IotlbHit}");
                }
            }
            PagingDomain pd = (PagingDomain)p.Devices[0].Domain!;
            lines.Add($"{pd.Pgd:x} {pd.Agaw} {pd.Width} {pd.Unmap(0x1000, 0x1000)} misses {p.Iommus[0].Unit.IotlbMisses} {p.Memory.Statistics}");
            lines.Add($"after unmap: {p.Devices[1].Translate(0x1000, Access.Read).Status}");
            return string.Join("\n", lines);
        }
        Probe(original);
        var saved = new MemoryStream();
        original.Save(saved);
        saved.Position = 0;
        using Platform loaded = Platform.Load(saved);
        Assert.Equal(Probe(original), Probe(loaded));
    }

    [Fact]
    public void GuestRamLargerThanOneFrameSectionComesBackByteForByte()
    {
        using var original = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 256UL << 20 } });
        Vm vm = original.CreateVm(new VmOptions { Name = "big" });
        vm.AddMemslot(0, 0, 40UL << 20, PageSize.Size4K);
        vm.MapGpa(0, 40UL << 20, Access.ReadWrite);
        byte[] data = new byte[40 << 20];
        new Random(7).NextBytes(data);
        vm.WriteGuest(0, data);
        var saved = new MemoryStream();
        original.Save(saved);
        Assert.True(CheckpointRig.Sections(saved.ToArray()).Count(s => s.Tag == "FRMS") >= 3, "10,240 written frames take three FRMS sections of 4,096");
        saved.Position = 0;
        using Platform loaded = Platform.Load(saved);
        byte[] back = new byte[data.Length];
        loaded.Vms.Single().ReadGuest(0, back);
        Assert.True(data.AsSpan().SequenceEqual(back), "the guest's RAM differs after the load");
        Assert.Equal(original.Memory.Statistics, loaded.Memory.Statistics);
    }

    [Fact]
    public unsafe void EmbedderRamIsRefusedWithEopnotsupp()
    {
        void* ram = System.Runtime.InteropServices.NativeMemory.AlignedAlloc(16 * 4096, 4096);
        try
        {
            using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 64UL << 20 } });
            platform.AddRam(1UL << 40, (nint)ram, 16 * 4096);
            var e = Assert.Throws<EngineException>(() => platform.Save(Stream.Null));
            Assert.Equal(Errno.EOPNOTSUPP, e.Errno);
            Assert.Contains("AddRam", e.Message);
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(ram);
        }
    }
}

[Collection(nameof(NativeTrackerCollection))]
public class CorruptCheckpointTests
{
    private static byte[] Checkpoint()
    {
        using Platform p = CheckpointRig.Build();
        CheckpointRig.Drive(p, seed: 5, steps: 300);
        var s = new MemoryStream();
        p.Save(s);
        return s.ToArray();
    }

    private static InvalidDataException LoadFails(byte[] bytes)
    {
        long reserved = NativeMemoryTracker.ReservedBytes, live = NativeMemoryTracker.LiveAllocations;
        var e = Assert.Throws<InvalidDataException>(() => Platform.Load(new MemoryStream(bytes)).Dispose());
        Assert.True(reserved == NativeMemoryTracker.ReservedBytes && live == NativeMemoryTracker.LiveAllocations,
            $"a failed load left native memory behind: {NativeMemoryTracker.ReservedBytes - reserved} bytes, {NativeMemoryTracker.LiveAllocations - live} allocations ({e.Message})");
        return e;
    }

    [Fact]
    public void ATruncatedCheckpointNamesTheOffsetAndLeavesNothingBehind()
    {
        byte[] bytes = Checkpoint();
        var cuts = new SortedSet<int> { 0, 1, 8, 15, 16, 17, bytes.Length - 1 };
        foreach (var (_, offset, length) in CheckpointRig.Sections(bytes))
        {
            foreach (int cut in new[] { offset, offset + 4, offset + 8, offset + 8 + length / 2, offset + 8 + length, offset + 8 + length + 2 })
                cuts.Add(cut);
        }
        foreach (int cut in cuts.Where(c => c < bytes.Length))
        {
            InvalidDataException e = LoadFails(bytes[..cut]);
            Assert.Contains("offset", e.Message);
            Assert.Contains("expected", e.Message);
        }
    }

    [Fact]
    public void EveryFlippedByteIsCaughtBeforeAnythingIsBuilt()
    {
        byte[] bytes = Checkpoint();
        var random = new Random(13);
        for (int i = 0; i < 300; i++)
        {
            byte[] copy = (byte[])bytes.Clone();
            int at = i < 64 ? i : random.Next(copy.Length);
            copy[at] ^= (byte)(1 << random.Next(8));
            InvalidDataException e = LoadFails(copy);
            Assert.Contains("offset", e.Message);
        }
        byte[] extra = [.. bytes, 0];
        Assert.Contains("nothing after the end section", LoadFails(extra).Message);
        byte[] version = (byte[])bytes.Clone();
        version[8] = 2;
        Assert.Contains("version 1", LoadFails(version).Message);
    }

    private sealed class OneWay(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
        public override long Length => throw new NotSupportedException();
    }

    [Fact]
    public void ANonSeekableStreamLoadsAndATruncatedOneFailsWithItsOffset()
    {
        byte[] bytes = Checkpoint();
        using (Platform loaded = Platform.Load(new OneWay(bytes)))
            Assert.Equal(3, loaded.Devices.Count);
        var e = Assert.Throws<InvalidDataException>(() => Platform.Load(new OneWay(bytes[..(bytes.Length / 2)])).Dispose());
        Assert.Contains("offset", e.Message);
        Assert.Contains("truncated", e.Message);
        using var disposed = CheckpointRig.Build();
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => disposed.Save(Stream.Null));
    }

    [Fact]
    public void AWellFormedButImpossibleSectionStopsTheLoadAfterBuildingAndDisposesWhatWasBuilt()
    {
        byte[] bytes = Checkpoint();
        var sections = CheckpointRig.Sections(bytes);
        // Host memory's first frame state (after bump, tag, 3 counters and the epoch: 8 + 4 + 24 + 8 bytes) made impossible.
        var (_, memOffset, memLength) = sections.Single(s => s.Tag == "MEMR");
        byte[] badState = (byte[])bytes.Clone();
        badState[memOffset + 8 + 44] = 9;
        CheckpointRig.FixCrc(badState, memOffset, memLength);
        InvalidDataException e = LoadFails(badState);
        Assert.Contains("section MEMR", e.Message);
        Assert.Contains("state of frame 0", e.Message);

        // A domain naming a device that does not exist (the last two bytes of DOMS: its last device index).
        var (_, domOffset, domLength) = sections.Single(s => s.Tag == "DOMS");
        byte[] badDevice = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(badDevice.AsSpan(domOffset + 8 + domLength - 2), 77);
        CheckpointRig.FixCrc(badDevice, domOffset, domLength);
        e = LoadFails(badDevice);
        Assert.Contains("section DOMS", e.Message);
        Assert.Contains("device index below 3, found 77", e.Message);
    }
}

public class CheckpointBatchWalkerTests
{
    [Fact]
    public void TheBatchWalkerOptionsComeBackAsSaved()
    {
        IReadOnlyList<Engine.Paging.BatchWalkerKind> kinds = Engine.Paging.PageWalker.SupportedBatchWalkers;
        using var platform = new Engine.Control.Platform(new Engine.Control.PlatformOptions
        {
            Memory = new Engine.Memory.HostMemoryOptions { Size = 256UL << 20 },
            BatchWalker = kinds[^1],
        });
        Engine.Iommu.IommuPreset preset = Engine.Iommu.IommuPresets.Get("server");
        platform.AddIommu("dmar0", new Engine.Iommu.DmarUnitOptions { Cap = preset.Cap, Ecap = preset.Ecap, BatchWalker = kinds[0] });
        platform.AddIommu("dmar1", preset);
        var saved = new MemoryStream();
        platform.Save(saved);
        saved.Position = 0;
        using var loaded = Engine.Control.Platform.Load(saved);
        Assert.Equal(kinds[^1], loaded.Options.BatchWalker);
        Assert.Equal(kinds[0], loaded.Iommus[0].Unit.Options.BatchWalker);
        Assert.Equal(kinds[0], loaded.Iommus[0].Unit.BatchWalker.Kind);
        Assert.Equal(kinds[^1], loaded.Iommus[1].Unit.BatchWalker.Kind);
    }
}
