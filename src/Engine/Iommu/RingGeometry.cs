using Engine.Memory;

namespace Engine.Iommu;

/// <summary>
/// A ring of fixed-size descriptors in host memory as its queue-address register describes it
/// (IQA_REG, PQA_REG: base 63:12, queue size QS 2:0 = 2^QS frames), with the head and tail registers
/// (IQH/IQT, PQH/PQT), which hold byte offsets of slots.
/// </summary>
/// <remarks>SPEC.md §2.8. The invalidation queue's slots are 16 or 32 bytes (IQA.DW); the page-request queue's are 32.</remarks>
/// <param name="BaseHpa">The ring's first byte (4 KiB aligned).</param>
/// <param name="Shift">log2 of the slot size in bytes.</param>
/// <param name="Slots">How many slots the ring has.</param>
internal readonly record struct RingGeometry(ulong BaseHpa, int Shift, ulong Slots)
{
    /// <summary>Bits 63:12 of a queue-address register (and of RTADDR): the 4 KiB-aligned base.</summary>
    public const ulong BaseMask = 0xFFFF_FFFF_FFFF_F000UL;

    /// <summary>Bits 2:0 of a queue-address register: QS, the ring's size as a power of two of frames.</summary>
    public const ulong SizeOrderMask = 7;

    /// <summary>The size of one slot in bytes.</summary>
    public int SlotSize => 1 << Shift;

    /// <summary>The ring's size in bytes.</summary>
    public ulong Bytes => Slots << Shift;

    /// <summary>The ring <paramref name="queueAddress"/> (IQA_REG or PQA_REG) describes, with slots of 2^<paramref name="slotShift"/> bytes.</summary>
    public static RingGeometry Of(ulong queueAddress, int slotShift) =>
        new(queueAddress & BaseMask, slotShift, ((ulong)HostMemory.FrameSize << (int)(queueAddress & SizeOrderMask)) >> slotShift);

    /// <summary>The slot a head or tail register names (its byte offset over the slot size; not wrapped).</summary>
    public ulong SlotOf(ulong headOrTail) => headOrTail >> Shift;

    /// <summary>The head or tail register value that names <paramref name="slot"/>.</summary>
    public ulong OffsetOf(ulong slot) => slot << Shift;

    /// <summary>Whether a head or tail register value is a whole number of slots.</summary>
    public bool IsAligned(ulong headOrTail) => (headOrTail & ((1UL << Shift) - 1)) == 0;

    /// <summary>The host-physical address of <paramref name="slot"/>.</summary>
    public ulong SlotHpa(ulong slot) => BaseHpa + (slot << Shift);

    /// <summary>
    /// Refuses a queue of 2^<paramref name="queueSizeOrder"/> frames at <paramref name="queueHpa"/> that
    /// is not allocated host memory: the unit writes into the queues it is given, so memory it could
    /// not use is refused when the queue is programmed rather than at the first submission.
    /// </summary>
    /// <exception cref="ArgumentException">The queue is not in allocated host memory.</exception>
    public static void RequireAllocated(HostMemory memory, ulong queueHpa, int queueSizeOrder, string paramName)
    {
        try
        {
            _ = memory.GetSpan(queueHpa, HostMemory.FrameSize << queueSizeOrder);
        }
        catch (InvalidHostAddressException e)
        {
            throw new ArgumentException($"The queue at 0x{queueHpa:x} ({HostMemory.FrameSize << queueSizeOrder} bytes) is not allocated host memory: {e.Message}", paramName, e);
        }
    }
}
