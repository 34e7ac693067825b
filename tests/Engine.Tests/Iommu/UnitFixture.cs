using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>A unit whose second-stage table is a KVM VM's EPT, with legacy or scalable tables.</summary>
internal sealed class UnitFixture : IDisposable
{
    public static readonly CapabilityRegister ServerCap = CapabilityRegister.Encode(new CapabilityFields
    {
        Nd = 6, Sagaw = 0b1100, Mgaw = 57, FaultRecordingOffset = 0x400, NumberOfFaultRegisters = 8, Psi = true, Sllps = 3, Mamv = 18,
    });

    public static readonly ExtendedCapabilityRegister ServerEcap = ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields
    {
        Qi = true, DeviceTlb = true, SnoopControl = true, PassThrough = true, IotlbRegisterOffset = 0x500, ScalableMode = true,
        Smpwc = true, Slts = true, Pasid = true, PasidBits = 20, Prs = true,
    });

    public const ushort Did = 5;
    public static readonly ushort Sid = TranslationRequest.Bdf(0x3A, 2, 1);

    public UnitFixture(bool scalable, int levels = 4, CapabilityRegister? cap = null, ExtendedCapabilityRegister? ecap = null, bool simd = true)
    {
        Memory = new HostMemory(new HostMemoryOptions { Size = 4UL << 30 });
        Vm = new Vm(Memory, new VmOptions { TdpLevels = levels, MaxHugePageLevel = 3 });
        Vm.AddMemslot(0, 0, 64UL << 20, PageSize.Size2M);
        Vm.AddMemslot(1, 1UL << 30, 1UL << 30, PageSize.Size1G);
        Unit = new DmarUnit(Memory, new DmarUnitOptions { Cap = cap ?? ServerCap, Ecap = ecap ?? ServerEcap, UseSimd = simd });
        Tables = new TranslationTables(Memory, scalable);
        int aw = levels - 2;
        if (scalable)
        {
            Tables.SetScalableContext(Sid, ridPasid: 0, pasidEnable: true, pageRequestEnable: true);
            Tables.SetPasidEntry(Sid, 0, PasidEntry.SecondLevel(Vm.Tdp.RootHpa, aw, Did, pgsnp: true, pwsnp: true));
        }
        else
        {
            Tables.SetContext(Sid, ContextEntry.Create(Vm.Tdp.RootHpa, aw, Did));
        }
        Unit.SetRootTable(Tables.RootTable, scalable);
        Unit.SetTranslationEnabled(true);
        Queue = Memory.AllocateFrame();
    }

    public HostMemory Memory { get; }

    public Vm Vm { get; }

    public DmarUnit Unit { get; }

    public TranslationTables Tables { get; }

    public ulong Queue { get; }

    public TranslationResult Translate(ulong iova, Access access = Access.Read, ushort? sid = null, uint pasid = TranslationRequest.NoPasid) =>
        Unit.Translate(new TranslationRequest(sid ?? Sid, iova, access, pasid));

    public ulong Backing(ulong gpa) => Vm.FindSlot(gpa >> 12)!.PeekHpa(gpa >> 12) | (gpa & 0xFFF);

    public void Dispose()
    {
        Unit.Dispose();
        Vm.Dispose();
        Memory.Dispose();
    }
}
