using Engine.Memory;
using Engine.Paging;

namespace Engine.Kvm;

// The byte-sized twins of Map, Zap and WriteProtect. AddMemslot, ReadGuest/WriteGuest, the C ABI
// and every size an embedder already holds are in bytes; KVM's own calls take GFNs and page counts.
// These let an embedder stay in one unit: the GPA in the name says the address is a byte address,
// and the size beside it is bytes too.
public sealed partial class Vm
{
    /// <summary>
    /// Maps the guest-physical range [<paramref name="gpa"/>, +<paramref name="size"/>), both in bytes
    /// and 4 KiB aligned, as <see cref="Map"/> does for GFNs and page counts.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gpa"/> or <paramref name="size"/> is not a multiple of 4 KiB, or the size is 0; see also <see cref="Map"/>.</exception>
    /// <exception cref="EngineException">As <see cref="Map"/>.</exception>
    public void MapGpa(ulong gpa, ulong size, Access permissions)
    {
        CheckByteRange(gpa, size);
        Map(gpa >> HostMemory.FrameShift, size >> HostMemory.FrameShift, permissions);
    }

    /// <summary>Zaps [<paramref name="gpa"/>, +<paramref name="size"/>), both in bytes and 4 KiB aligned, as <see cref="Zap"/> does for GFNs and page counts.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gpa"/> or <paramref name="size"/> is not a multiple of 4 KiB, or the size is 0; see also <see cref="Zap"/>.</exception>
    /// <exception cref="EngineException">As <see cref="Zap"/>.</exception>
    public void ZapGpa(ulong gpa, ulong size)
    {
        CheckByteRange(gpa, size);
        Zap(gpa >> HostMemory.FrameShift, size >> HostMemory.FrameShift);
    }

    /// <summary>Write-protects [<paramref name="gpa"/>, +<paramref name="size"/>), both in bytes and 4 KiB aligned, as <see cref="WriteProtect"/> does for GFNs and page counts.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="gpa"/> or <paramref name="size"/> is not a multiple of 4 KiB, or the size is 0; see also <see cref="WriteProtect"/>.</exception>
    /// <exception cref="EngineException">As <see cref="WriteProtect"/>.</exception>
    public void WriteProtectGpa(ulong gpa, ulong size)
    {
        CheckByteRange(gpa, size);
        WriteProtect(gpa >> HostMemory.FrameShift, size >> HostMemory.FrameShift);
    }

    // Unaligned byte ranges are refused, not widened: a caller who meant 100 bytes of page 0x40 and a
    // caller who passed a page count by mistake both deserve to hear it.
    private static void CheckByteRange(ulong gpa, ulong size)
    {
        if ((gpa & (HostMemory.FrameSize - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(gpa), gpa, $"The GPA must be 4 KiB aligned (a byte address; 0x{gpa:x} is not).");
        if (size == 0 || (size & (HostMemory.FrameSize - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"The size must be a non-zero multiple of 4 KiB, in bytes (0x{size:x} is not).");
    }
}
