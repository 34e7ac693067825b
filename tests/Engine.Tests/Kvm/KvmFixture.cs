using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Kvm;

/// <summary>A VM with an exported TDP and a recording importer.</summary>
internal sealed class KvmFixture : IDisposable
{
    public KvmFixture(int levels = 4, int maxHugePageLevel = 3, ulong memoryGiB = 4)
    {
        Memory = new HostMemory(new HostMemoryOptions { Size = memoryGiB << 30 });
        Vm = new Vm(Memory, new VmOptions { TdpLevels = levels, MaxHugePageLevel = maxHugePageLevel });
        Export = Vm.ExportTdp();
        Importer = new RecordingImporter();
        Export.RegisterImporter(Importer);
    }

    public HostMemory Memory { get; }

    public Vm Vm { get; }

    public KvmTdpFd Export { get; }

    public RecordingImporter Importer { get; }

    public WalkResult Walk(ulong gpa, Access access = Access.Read) => Vm.Translate(gpa, access);

    public ulong Backing(ulong gfn) => Vm.FindSlot(gfn)!.PeekHpa(gfn);

    public void Dispose()
    {
        Vm.Dispose();
        Memory.Dispose();
    }
}
