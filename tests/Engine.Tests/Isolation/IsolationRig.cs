using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;
using Engine.Tests.Iommu;

namespace Engine.Tests.Isolation;

/// <summary>
/// One unit and several second-stage tables (KVM EPTs) that map the same IOVAs to different frames,
/// so every HPA a translation returns names the table it came from. The test plays the driver:
/// it programs context and PASID entries and issues the invalidations the driver would (or, in a
/// control, leaves them out).
/// </summary>
internal sealed class IsolationRig : IDisposable
{
    public const int Pages = 64;
    private readonly Dictionary<ulong, int> _tableOf = [];
    private readonly List<Vm> _vms = [];

    public IsolationRig(bool scalable, int tables, bool simd = true)
    {
        Scalable = scalable;
        Memory = new HostMemory(new HostMemoryOptions { Size = 2UL << 30 });
        for (int t = 0; t < tables; t++)
        {
            var vm = new Vm(Memory, new VmOptions { TdpLevels = 4, MaxHugePageLevel = 1 });
            vm.AddMemslot(0, 0, (ulong)Pages << 12, PageSize.Size4K);
            vm.Map(0, Pages, Access.All);
            for (int p = 0; p < Pages; p++)
                _tableOf.Add(vm.FindSlot((ulong)p)!.PeekHpa((ulong)p), t);
            _vms.Add(vm);
        }
        Unit = new DmarUnit(Memory, new DmarUnitOptions { Cap = UnitFixture.ServerCap, Ecap = UnitFixture.ServerEcap, UseSimd = simd });
        Tables = new TranslationTables(Memory, scalable);
        Unit.SetRootTable(Tables.RootTable, scalable);
        Unit.SetTranslationEnabled(true);
    }

    public bool Scalable { get; }

    public HostMemory Memory { get; }

    public DmarUnit Unit { get; }

    public TranslationTables Tables { get; }

    /// <summary>The table an HPA (page + offset) belongs to, or -1 when it is none of them.</summary>
    public int TableOf(ulong hpa) => _tableOf.TryGetValue(hpa & ~0xFFFUL, out int t) ? t : -1;

    /// <summary>Points <paramref name="sid"/> (its requests without PASID) at <paramref name="table"/> under <paramref name="did"/>.</summary>
    public void Attach(ushort sid, int table, ushort did)
    {
        if (Scalable)
        {
            Tables.SetScalableContext(sid, ridPasid: 0, pasidEnable: true);
            Tables.SetPasidEntry(sid, 0, PasidEntry.SecondLevel(_vms[table].Tdp.RootHpa, 2, did, pgsnp: true, pwsnp: true));
        }
        else
        {
            Tables.SetContext(sid, ContextEntry.Create(_vms[table].Tdp.RootHpa, 2, did));
        }
    }

    /// <summary>Blocks <paramref name="sid"/>: no context (or no PASID entry) at all.</summary>
    public void Block(ushort sid)
    {
        if (Scalable)
            Tables.ClearPasidEntry(sid, 0);
        else
            Tables.ClearContext(sid);
    }

    /// <summary>The driver's flush after a context change: context (and PASID) cache, globally.</summary>
    public void InvalidateContexts() =>
        Unit.WriteRegister(RegisterOffsets.ContextCommand, 8, 1UL << 63 | 1UL << 61);

    /// <summary>The driver's flush of a domain's IOTLB entries (domain-selective, register-based).</summary>
    public void InvalidateDomain(ushort did)
    {
        Unit.WriteRegister(Unit.Ecap.IotlbRegisterOffset + 8, 8, 1UL << 63 | 2UL << 60 | (ulong)did << 32);
    }

    public TranslationResult Translate(ushort sid, int page, Access access = Access.Read) =>
        Unit.Translate(new TranslationRequest(sid, ((ulong)page << 12) | 0x40, access));

    public void Dispose()
    {
        Unit.Dispose();
        foreach (Vm vm in _vms)
            vm.Dispose();
        Memory.Dispose();
    }
}
