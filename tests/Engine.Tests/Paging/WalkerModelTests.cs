using CsCheck;
using Engine.Kvm;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Tests.Paging;

/// <summary>
/// The walker against a plain dictionary model: random map / zap / write-protect operations through
/// the TDP MMU, then every GFN they touched (and a random sample of others) is walked and compared.
/// </summary>
public class WalkerModelTests
{
    internal enum OpKind { Map, Zap, WriteProtect }

    internal readonly record struct Op(OpKind Kind, int Slot, ulong Offset, ulong Pages, Access Permissions);

    // Three slots with different backings so every page size appears.
    private static readonly (ulong Gfn, ulong Pages, PageSize Backing)[] Slots =
    [
        (0, 16 * 512, PageSize.Size2M),                  // 32 MiB at 0, 2M backing
        (1UL << 18, 1UL << 18, PageSize.Size1G),          // 1 GiB at 1 GiB, 1G backing
        (3UL << 18, 4096, PageSize.Size4K),               // 16 MiB at 3 GiB, 4K backing
    ];

    private static readonly Access[] PermissionChoices = [Access.Read, Access.ReadWrite, Access.All, Access.Read | Access.Execute];

    public static TheoryData<int, int, int> Seeds()
    {
        var data = new TheoryData<int, int, int>();
        for (int seed = 1; seed <= 6; seed++)
            data.Add(seed, 4 + seed % 2, 1 + seed % 3);
        return data;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void TheWalkerAgreesWithTheModelForFixedSeeds(int seed, int levels, int maxHugePageLevel)
    {
        var rng = new Random(seed);
        var ops = new List<Op>();
        for (int i = 0; i < 40; i++)
        {
            int slot = rng.Next(Slots.Length);
            ulong slotPages = Slots[slot].Pages;
            // Mostly aligned starts so large pages appear, sometimes ragged ones so splits happen.
            ulong pages = (ulong)(rng.Next(4) == 0 ? rng.Next(1, 2000) : 512 * rng.Next(1, 4));
            pages = Math.Min(pages, slotPages);
            ulong offset = (ulong)rng.NextInt64((long)(slotPages - pages + 1));
            if (rng.Next(2) == 0)
                offset &= ~511UL;
            ops.Add(new Op((OpKind)(i < 8 ? 0 : rng.Next(3)), slot, offset, pages, PermissionChoices[rng.Next(PermissionChoices.Length)]));
        }
        CheckAgainstModel(levels, maxHugePageLevel, ops, rng);
    }

    [Fact]
    public void TheWalkerAgreesWithTheModelForGeneratedOperations()
    {
        var genOp =
            from slot in Gen.Int[0, Slots.Length - 1]
            from kind in Gen.Enum<OpKind>()
            from pages in Gen.OneOf(Gen.ULong[1, 1500], Gen.Const(512UL), Gen.Const(1024UL))
            from startFraction in Gen.Double[0, 1]
            from aligned in Gen.Bool
            from perm in Gen.Int[0, PermissionChoices.Length - 1]
            let slotPages = Slots[slot].Pages
            let n = Math.Min(pages, slotPages)
            let offset = (ulong)(startFraction * (slotPages - n))
            select new Op(kind, slot, aligned ? offset & ~511UL : offset, n, PermissionChoices[perm]);
        Gen.Select(Gen.Int[4, 5], Gen.Int[1, 3], genOp.Array[1, 25], Gen.Int[0, 1000])
            .Sample((levels, maxHuge, ops, seed) => CheckAgainstModel(levels, maxHuge, ops, new Random(seed)), iter: 25, threads: 1);
    }

    private static void CheckAgainstModel(int levels, int maxHugePageLevel, IReadOnlyList<Op> ops, Random rng)
    {
        using var memory = new HostMemory(new HostMemoryOptions { Size = 4UL << 30 });
        using var vm = new Vm(memory, new VmOptions { TdpLevels = levels, MaxHugePageLevel = maxHugePageLevel });
        for (int s = 0; s < Slots.Length; s++)
            vm.AddMemslot(s, Slots[s].Gfn << 12, Slots[s].Pages << 12, Slots[s].Backing);

        var model = new Dictionary<ulong, Access>();
        var touched = new HashSet<ulong>();
        foreach (Op op in ops)
        {
            ulong gfn = Slots[op.Slot].Gfn + op.Offset;
            switch (op.Kind)
            {
                case OpKind.Map:
                    vm.Map(gfn, op.Pages, op.Permissions);
                    for (ulong g = gfn; g < gfn + op.Pages; g++)
                        model[g] = op.Permissions;
                    break;
                case OpKind.Zap:
                    vm.Zap(gfn, op.Pages);
                    for (ulong g = gfn; g < gfn + op.Pages; g++)
                        model.Remove(g);
                    break;
                default:
                    vm.WriteProtect(gfn, op.Pages);
                    for (ulong g = gfn; g < gfn + op.Pages; g++)
                    {
                        if (model.TryGetValue(g, out Access a))
                            model[g] = a & ~Access.Write;
                    }
                    break;
            }
            for (ulong g = gfn; g < gfn + op.Pages; g++)
                touched.Add(g);
        }
        for (int i = 0; i < 2000; i++)
        {
            var (g0, n, _) = Slots[rng.Next(Slots.Length)];
            touched.Add(g0 + (ulong)rng.NextInt64((long)n));
        }
        touched.Add(1UL << 30); // far outside every slot

        var cpu = vm.Tdp.WalkerConfig;
        var iommu = WalkerConfig.SecondStage(memory.HostAddressWidth, Math.Max(0, maxHugePageLevel - 1));
        using (memory.Epochs.Enter())
        {
            foreach (ulong gfn in touched)
            {
                ulong gpa = (gfn << 12) | (uint)rng.Next(4096);
                WalkResult r = PageWalker.Walk(memory, cpu, vm.Tdp.RootHpa, levels, gpa, Access.None);
                WalkResult v = PageWalker.Walk(memory, iommu, vm.Tdp.RootHpa, levels, gpa, Access.Read);
                if (model.TryGetValue(gfn, out Access perms))
                {
                    ulong want = vm.FindSlot(gfn)!.PeekHpa(gfn) | (gpa & 0xfff);
                    Assert.True(r.IsSuccess && r.Hpa == want && r.Permissions == perms,
                        $"GFN 0x{gfn:x}: walker says {r}, model says 0x{want:x} {perms}");
                    Assert.True((int)r.PageSize <= maxHugePageLevel, $"GFN 0x{gfn:x}: {r.PageSize} above the VM's max huge-page level {maxHugePageLevel}");
                    Assert.True(v.IsSuccess && v.Hpa == want, $"GFN 0x{gfn:x}: the IOMMU's view says {v}");
                }
                else
                {
                    Assert.True(r.Fault == WalkFault.NotPresent, $"GFN 0x{gfn:x}: walker says {r}, model says unmapped");
                    Assert.True(v.Fault == WalkFault.NotPresent, $"GFN 0x{gfn:x}: the IOMMU's view says {v}, model says unmapped");
                }
            }
        }
    }
}
