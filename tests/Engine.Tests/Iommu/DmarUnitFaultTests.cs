using Engine.Iommu;
using Engine.Paging;

namespace Engine.Tests.Iommu;

/// <summary>Every fault reason the model produces, each from a request built to produce it.</summary>
public class DmarUnitFaultTests
{
    private static readonly ushort Other = TranslationRequest.Bdf(0x3A, 3, 0);

    private static void Invalidate(UnitFixture f)
    {
        f.Unit.WriteRegister(RegisterOffsets.ContextCommand, 8, 1UL << 63 | 1UL << 61);
        f.Unit.WriteRegister(f.Unit.Ecap.IotlbRegisterOffset + 8, 8, 1UL << 63 | 1UL << 60);
    }

    [Fact]
    public void LegacyFaultsCarryTheirReasonCodes()
    {
        using var f = new UnitFixture(scalable: false);
        f.Vm.Map(0, 512, Access.Read);
        ushort noBus = TranslationRequest.Bdf(0x77, 0, 0);
        Assert.Equal(FaultReason.RootEntryNotPresent, f.Translate(0, sid: noBus).Fault);                  // 0x1
        Assert.Equal(FaultReason.ContextEntryNotPresent, f.Translate(0, sid: Other).Fault);               // 0x2
        f.Tables.SetContext(Other, ContextEntry.Create(f.Vm.Tdp.RootHpa, 2, 6, translationType: 3));
        Assert.Equal(FaultReason.ContextEntryInvalid, f.Translate(0, sid: Other).Fault);                  // 0x3 (TT 3)
        f.Tables.SetContext(Other, ContextEntry.Create(f.Vm.Tdp.RootHpa, aw: 1, 6));
        Invalidate(f);
        Assert.Equal(FaultReason.ContextEntryInvalid, f.Translate(0, sid: Other).Fault);                  // 0x3 (AW not in SAGAW)
        Assert.Equal(FaultReason.AddressBeyondMgaw, f.Translate(1UL << 48).Fault);                        // 0x4
        Assert.Equal(FaultReason.Write, f.Translate(0x1000, Access.Write).Fault);                        // 0x5
        Assert.Equal(FaultReason.Read, f.Translate(0x4000_0000).Fault);                                  // 0x6 (not present)
        Assert.Equal(FaultReason.SmTtmLegacyWithPasid, f.Translate(0, pasid: 3).Fault);                   // 0x31
        Assert.Equal(FaultReason.ContextEntryTranslationType,
            f.Unit.Translate(new TranslationRequest(UnitFixture.Sid, 0, Access.Read, isTranslationRequest: true)).Fault); // 0xD
        // 0x7: a second-stage table pointer outside host memory.
        ushort bad = TranslationRequest.Bdf(0x3A, 4, 0);
        f.Tables.SetContext(bad, ContextEntry.Create(f.Memory.EndHpa, 2, 7));
        Assert.Equal(FaultReason.PagingEntryInvalid, f.Translate(0, sid: bad).Fault);
        // 0xB: a reserved bit in the context entry.
        f.Tables.Poke(f.Tables.ContextEntryAddress(bad) + 8, (2UL | 7UL << 8) | 1UL << 40);
        Invalidate(f);
        Assert.Equal(FaultReason.ContextEntryReserved, f.Translate(0, sid: bad).Fault);
        // 0xA: a reserved bit in the root entry; 0x9: a context-table pointer outside memory.
        ulong rootEntry = f.Tables.RootTable + 0x3A * 16;
        ulong saved = f.Memory.ReadEntry(rootEntry);
        f.Tables.Poke(rootEntry, saved | 0x10);
        Invalidate(f);
        Assert.Equal(FaultReason.RootEntryReserved, f.Translate(0).Fault);
        f.Tables.Poke(rootEntry, f.Memory.EndHpa | 1);
        Invalidate(f);
        Assert.Equal(FaultReason.ContextTableInvalid, f.Translate(0).Fault);
        f.Tables.Poke(rootEntry, saved);
        Invalidate(f);
        // 0xC: a reserved bit in a present second-stage entry (SNP in a non-leaf entry).
        ulong pml4e = f.Vm.Tdp.RootHpa;
        f.Tables.Poke(pml4e, f.Memory.ReadEntry(pml4e) | SlPte.SnoopBit);
        Assert.Equal(FaultReason.PagingEntryReserved, f.Translate(0).Fault);
        // 0x8: a root table outside host memory.
        f.Unit.WriteRegister(RegisterOffsets.RootTableAddress, 8, f.Memory.EndHpa);
        f.Unit.IssueGlobalCommand(GlobalCommand.SetRootTablePointer);
        Assert.Equal(FaultReason.RootTableInvalid, f.Translate(0).Fault);
        Assert.True(f.Unit.Faults >= 13);
    }

    [Fact]
    public void ScalableModeFaultsCarryTheirReasonCodes()
    {
        using var f = new UnitFixture(scalable: true);
        f.Vm.Map(0, 512, Access.Read);
        Assert.Equal(FaultReason.SmRootEntryNotPresent, f.Translate(0, sid: TranslationRequest.Bdf(0x40, 0, 0)).Fault);   // 0x39
        Assert.Equal(FaultReason.SmContextEntryNotPresent, f.Translate(0, sid: Other).Fault);                            // 0x41
        Assert.Equal(FaultReason.SmRootEntryNotPresent, f.Translate(0, sid: TranslationRequest.Bdf(0x3A, 0x10, 0)).Fault); // upper half absent
        f.Tables.SetScalableContext(Other, pasidEnable: false);
        Assert.Equal(FaultReason.SmPasidEnableClear, f.Translate(0, sid: Other, pasid: 1).Fault);                      // 0x45
        Assert.Equal(FaultReason.SmPasidTooLarge, f.Translate(0, pasid: 0xF_FFFF).Fault);                              // 0x46
        Assert.Equal(FaultReason.SmPasidDirectoryNotPresent, f.Translate(0, pasid: 64).Fault);                         // 0x51
        Assert.Equal(FaultReason.SmPasidDirectoryNotPresent, f.Translate(0, sid: Other).Fault);
        f.Tables.SetPasidEntry(Other, 5, PasidEntry.PassThrough(2, 3));
        Assert.Equal(FaultReason.SmPasidEntryNotPresent, f.Translate(0, sid: Other).Fault);                            // 0x59
        f.Tables.SetPasidEntry(Other, 0, new PasidEntry(1 | (ulong)Pgtt.FirstLevel << 6 | 2 << 2, 3));
        Assert.Equal(FaultReason.SmPasidEntryInvalid, f.Translate(0, sid: Other).Fault);                               // 0x5B (first level)
        f.Tables.SetPasidEntry(Other, 0, PasidEntry.SecondLevel(f.Vm.Tdp.RootHpa, aw: 1, 3, true, true));
        Invalidate(f);
        Assert.Equal(FaultReason.SmPasidEntryInvalid, f.Translate(0, sid: Other).Fault);                               // 0x5B (AW)
        Assert.Equal(FaultReason.SmSecondLevelPermission, f.Translate(0x1000, Access.Write).Fault);                    // 0x79 (permission)
        Assert.Equal(FaultReason.SmSecondLevelPermission, f.Translate(0x4000_0000).Fault);                             // 0x79 (not present)
        Assert.Equal(FaultReason.SmAddressBeyondMax, f.Translate(1UL << 48).Fault);                                    // 0x83
        Assert.Equal(FaultReason.SmDteClear,
            f.Unit.Translate(new TranslationRequest(UnitFixture.Sid, 0, Access.Read, isTranslationRequest: true)).Fault); // 0x44
        // Reserved bits in each structure: 0x3A, 0x42, 0x52, 0x5A.
        ulong rootEntry = f.Tables.RootTable + 0x3A * 16;
        ulong savedRoot = f.Memory.ReadEntry(rootEntry);
        f.Tables.Poke(rootEntry, savedRoot | 0x20);
        Invalidate(f);
        Assert.Equal(FaultReason.SmRootEntryReserved, f.Translate(0).Fault);
        f.Tables.Poke(rootEntry, savedRoot);
        ulong ctx = f.Tables.ContextEntryAddress(UnitFixture.Sid);
        ulong savedCtx = f.Memory.ReadEntry(ctx + 8);
        f.Tables.Poke(ctx + 8, savedCtx | 1UL << 40);
        Invalidate(f);
        Assert.Equal(FaultReason.SmContextEntryReserved, f.Translate(0).Fault);
        f.Tables.Poke(ctx + 8, savedCtx);
        ulong dirEntry = f.Memory.ReadEntry(ctx) & ScalableContextEntry.PasidDirectoryPointerMask;
        ulong savedDir = f.Memory.ReadEntry(dirEntry);
        f.Tables.Poke(dirEntry, savedDir | 0x100);
        Invalidate(f);
        Assert.Equal(FaultReason.SmPasidDirectoryReserved, f.Translate(0).Fault);
        f.Tables.Poke(dirEntry, savedDir);
        ulong pe = f.Tables.PasidEntryAddress(UnitFixture.Sid, 0);
        ulong savedPe = f.Memory.ReadEntry(pe);
        f.Tables.Poke(pe, savedPe | 0x400);
        Invalidate(f);
        Assert.Equal(FaultReason.SmPasidEntryReserved, f.Translate(0).Fault);
        f.Tables.Poke(pe, savedPe);
        Invalidate(f);
        // 0x7A and 0x7B from the second-stage walk.
        ulong pml4e = f.Vm.Tdp.RootHpa;
        ulong savedPml4e = f.Memory.ReadEntry(pml4e);
        f.Tables.Poke(pml4e, savedPml4e | SlPte.PageSizeBit);
        Assert.Equal(FaultReason.SmSecondLevelReserved, f.Translate(0).Fault);
        f.Tables.Poke(pml4e, (savedPml4e & ~EptEntry.AddressMask) | f.Memory.EndHpa);
        Assert.Equal(FaultReason.SmSecondLevelPointerInvalid, f.Translate(0).Fault);
        // KVM itself refuses to follow the corrupted pointer with a clear error.
        Assert.Contains("corrupted", Assert.Throws<InvalidOperationException>(() => f.Vm.Zap(0, 1)).Message);
        f.Tables.Poke(pml4e, savedPml4e);
        // 0x30: a reserved translation-table mode.
        f.Unit.WriteRegister(RegisterOffsets.RootTableAddress, 8, f.Tables.RootTable | 3UL << 10);
        f.Unit.IssueGlobalCommand(GlobalCommand.SetRootTablePointer);
        Assert.Equal(FaultReason.SmRootTableAddressInvalid, f.Translate(0).Fault);
    }

    [Fact]
    public void TheOtherPermissionStyleReportsByRequest()
    {
        using var memory = new Engine.Memory.HostMemory(new Engine.Memory.HostMemoryOptions { Size = 1UL << 30 });
        using var unit = new DmarUnit(memory, new DmarUnitOptions { Cap = UnitFixture.ServerCap, Ecap = UnitFixture.ServerEcap, ScalablePermissionFaults = ScalablePermissionFaultStyle.ByRequest });
        var tables = new TranslationTables(memory, scalable: true);
        ulong emptyRoot = memory.AllocateFrame();
        tables.SetScalableContext(UnitFixture.Sid);
        tables.SetPasidEntry(UnitFixture.Sid, 0, PasidEntry.SecondLevel(emptyRoot, 2, 1, true, true));
        unit.SetRootTable(tables.RootTable, scalable: true);
        unit.SetTranslationEnabled(true);
        Assert.Equal(FaultReason.SmWrite, unit.Translate(new TranslationRequest(UnitFixture.Sid, 0, Access.Write)).Fault);
        Assert.Equal(FaultReason.SmRead, unit.Translate(new TranslationRequest(UnitFixture.Sid, 0, Access.Read)).Fault);
    }

    [Fact]
    public void AUnitWithoutScalableModeRefusesAScalableRootTable()
    {
        var legacyEcap = ExtendedCapabilityRegister.Encode(new ExtendedCapabilityFields { Qi = true, SnoopControl = true, IotlbRegisterOffset = 0x500 });
        using var f = new UnitFixture(scalable: true, ecap: legacyEcap);
        Assert.Equal(FaultReason.SmRootTableAddressInvalid, f.Translate(0).Fault);
    }
}
