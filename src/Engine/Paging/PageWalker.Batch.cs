using System.Runtime.CompilerServices;
using Engine.Memory;

namespace Engine.Paging;

// The batch walker: many addresses of one table walked level by level, so the loads of one level
// (up to a group of 16) are independent and in flight together — memory-level parallelism, the
// C anchors' "batched 16" row. A lane that meets anything unusual (a fault, a large leaf, a pointer
// outside memory) is finished by the scalar walk, so results are exactly Walk's.
public static unsafe partial class PageWalker
{
    /// <summary>Addresses walked together per group.</summary>
    public const int BatchGroup = 16;

    /// <summary>
    /// Walks every address of <paramref name="addresses"/> in the table at <paramref name="rootHpa"/>
    /// and writes one result each to <paramref name="results"/>; identical to calling
    /// <see cref="Walk"/> for each. The caller is inside an epoch-protected region.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="addresses"/>.</exception>
    [SkipLocalsInit]
    public static void WalkBatch(HostMemory memory, in WalkerConfig config, ulong rootHpa, int levels, ReadOnlySpan<ulong> addresses, Access access, Span<WalkResult> results)
    {
        if (results.Length < addresses.Length)
            throw new ArgumentException($"results holds {results.Length} entries for {addresses.Length} addresses.", nameof(results));
        if ((uint)(levels - 2) > 3 || (rootHpa & (HostMemory.FrameSize - 1)) != 0 || config.RejectWriteOnly)
        {
            // Unusual shapes and the CPU's EPT view take the scalar path; the batch serves the IOMMU's.
            for (int i = 0; i < addresses.Length; i++)
                results[i] = Walk(memory, config, rootHpa, levels, addresses[i], access);
            return;
        }
        ulong required = (ulong)access & EptEntry.PermissionMask;
        if (!config.ExecuteEnforced && (required & EptEntry.ExecuteBit) != 0)
            required = (required & ~EptEntry.ExecuteBit) | EptEntry.ReadBit;
        int width = PageSizes.WidthOfLevels(levels);
        byte* region = memory.RegionPointer;
        ulong baseHpa = memory.BaseHpa;
        ulong limit = memory.Limit;
        ulong present = config.PresentMask;
        ulong rootOffset = rootHpa - baseHpa;

        ulong* offsets = stackalloc ulong[BatchGroup];
        ulong* entries = stackalloc ulong[BatchGroup];
        ulong* permissions = stackalloc ulong[BatchGroup];
        int* lanes = stackalloc int[BatchGroup];

        for (int start = 0; start < addresses.Length; start += BatchGroup)
        {
            int count = Math.Min(BatchGroup, addresses.Length - start);
            int active = 0;
            for (int i = 0; i < count; i++)
            {
                ulong address = addresses[start + i];
                if ((address >> width) != 0 || rootOffset >= limit)
                {
                    results[start + i] = Walk(memory, config, rootHpa, levels, address, access);
                    continue;
                }
                lanes[active] = i;
                offsets[active] = rootOffset;
                permissions[active] = config.PermissionMask;
                active++;
            }
            for (int level = levels; level >= 1 && active > 0; level--)
            {
                int shift = PageSizes.ShiftOfLevel(level);
                ulong hot = config.Hot(level);
                // All loads of this level first: independent, so they overlap.
                for (int k = 0; k < active; k++)
                {
                    ulong index = (addresses[start + lanes[k]] >> shift) & PageSizes.LevelMask;
                    entries[k] = offsets[k] < limit ? Volatile.Read(ref *(ulong*)(region + offsets[k] + (index << 3))) : 0;
                }
                int kept = 0;
                for (int k = 0; k < active; k++)
                {
                    ulong e = entries[k];
                    int lane = lanes[k];
                    if (offsets[k] >= limit || (e & present) == 0 || (e & hot) != 0)
                    {
                        results[start + lane] = Walk(memory, config, rootHpa, levels, addresses[start + lane], access);
                        continue;
                    }
                    ulong perms = permissions[k] & e;
                    if (level == 1)
                    {
                        results[start + lane] = (required & ~perms) != 0
                            ? WalkResult.Faulted(WalkFault.Permission, 1, e)
                            : new WalkResult((e & EptEntry.AddressMask) | (addresses[start + lane] & (HostMemory.FrameSize - 1)), e, WalkFault.None, 1, (Access)perms);
                        continue;
                    }
                    lanes[kept] = lane;
                    offsets[kept] = (e & EptEntry.AddressMask) - baseHpa;
                    permissions[kept] = perms;
                    kept++;
                }
                active = kept;
            }
        }
    }
}
