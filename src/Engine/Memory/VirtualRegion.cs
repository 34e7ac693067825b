using System.Runtime.InteropServices;

namespace Engine.Memory;

/// <summary>
/// A range of virtual address space whose pages the operating system commits on first touch.
/// </summary>
/// <remarks>
/// Linux and macOS: one anonymous private mapping with MAP_NORESERVE, so a 64 GiB reservation
/// on a 24 GiB machine costs nothing until a page is written, and untouched pages read as zero.
/// Windows: MEM_RESERVE up front, MEM_COMMIT in 2 MiB chunks as the frame allocator's high-water
/// mark passes them (see <see cref="EnsureCommitted"/>).
/// </remarks>
internal sealed unsafe partial class VirtualRegion : IDisposable
{
    private const ulong WindowsCommitChunk = 2UL << 20;
    private readonly Lock _commitLock = new();
    private ulong _committedBytes;
    private byte* _pointer;

    public VirtualRegion(ulong size, bool transparentHugePages)
    {
        if (size == 0 || size % HostMemory.FrameSize != 0)
            throw new ArgumentOutOfRangeException(nameof(size), size, "The region size must be a non-zero multiple of 4096.");
        Size = size;
        if (OperatingSystem.IsWindows())
        {
            _pointer = (byte*)VirtualAlloc(null, (nuint)size, MemReserve, PageNoAccess);
            if (_pointer == null)
                throw new OutOfMemoryException($"Could not reserve {size:N0} bytes of address space (VirtualAlloc error {Marshal.GetLastPInvokeError()}).");
        }
        else
        {
            int flags = OperatingSystem.IsMacOS() || OperatingSystem.IsIOS()
                ? MapPrivate | MacMapAnonymous
                : MapPrivate | LinuxMapAnonymous | LinuxMapNoReserve;
            void* p = Mmap(null, (nuint)size, ProtRead | ProtWrite, flags, -1, 0);
            if (p == (void*)-1 || p == null)
                throw new OutOfMemoryException($"Could not reserve {size:N0} bytes of address space (mmap errno {Marshal.GetLastPInvokeError()}).");
            _pointer = (byte*)p;
            _committedBytes = size;
            // Only a hint: THP backing shortens the host's own TLB walks for table frames.
            if (transparentHugePages && OperatingSystem.IsLinux())
                _ = Madvise(p, (nuint)size, LinuxMadvHugePage);
        }
        NativeMemoryTracker.OnReserved(size);
    }

    public byte* Pointer => _pointer;

    public ulong Size { get; }

    /// <summary>Makes sure the first <paramref name="bytes"/> of the region are committed.</summary>
    public void EnsureCommitted(ulong bytes)
    {
        if (Volatile.Read(ref _committedBytes) >= bytes)
            return;
        lock (_commitLock)
        {
            if (_committedBytes >= bytes)
                return;
            ulong target = Math.Min(Size, (bytes + WindowsCommitChunk - 1) / WindowsCommitChunk * WindowsCommitChunk);
            if (VirtualAlloc(_pointer + _committedBytes, (nuint)(target - _committedBytes), MemCommit, PageReadWrite) == null)
                throw new HostMemoryExhaustedException($"The operating system refused to commit host memory up to {target:N0} bytes (VirtualAlloc error {Marshal.GetLastPInvokeError()}).");
            Volatile.Write(ref _committedBytes, target);
        }
    }

    public void Dispose()
    {
        if (_pointer == null)
            return;
        if (OperatingSystem.IsWindows())
            _ = VirtualFree(_pointer, 0, MemRelease);
        else
            _ = Munmap(_pointer, (nuint)Size);
        _pointer = null;
        NativeMemoryTracker.OnReleased(Size);
    }

    private const int ProtRead = 1;
    private const int ProtWrite = 2;
    private const int MapPrivate = 2;
    private const int LinuxMapAnonymous = 0x20;
    private const int LinuxMapNoReserve = 0x4000;
    private const int MacMapAnonymous = 0x1000;
    private const int LinuxMadvHugePage = 14;
    private const uint MemCommit = 0x1000;
    private const uint MemReserve = 0x2000;
    private const uint MemRelease = 0x8000;
    private const uint PageNoAccess = 0x01;
    private const uint PageReadWrite = 0x04;

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* addr, nuint length, int prot, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(void* addr, nuint length);

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(void* addr, nuint length, int advice);

    [LibraryImport("kernel32", EntryPoint = "VirtualAlloc", SetLastError = true)]
    private static partial void* VirtualAlloc(void* address, nuint size, uint allocationType, uint protect);

    [LibraryImport("kernel32", EntryPoint = "VirtualFree", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool VirtualFree(void* address, nuint size, uint freeType);
}
