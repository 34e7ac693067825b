using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Engine.Native;

/// <summary>
/// The ABI's error side: negative Linux errno values, the calling thread's last message, and the
/// mapping from whatever a control call threw to a code. Nothing here runs on a successful call.
/// </summary>
internal static unsafe class Errors
{
    // Linux's values. The ABI returns them negated.
    public const int Eio = 5;
    public const int Ebadf = 9;
    public const int Enomem = 12;
    public const int Efault = 14;
    public const int Ebusy = 16;
    public const int Eexist = 17;
    public const int Enodev = 19;
    public const int Einval = 22;
    public const int Enospc = 28;
    public const int Eopnotsupp = 95;

    /// <summary>Records <paramref name="message"/> as this thread's last error and returns -<paramref name="errno"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int Fail(int errno, string message)
    {
        LastError.Set(message);
        return -errno;
    }

    /// <summary>-EBADF for a handle that is NULL, of another kind, forged, or destroyed.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int BadHandle(string function, string parameter, nint handle) =>
        Fail(Ebadf, handle == 0
            ? $"{function}: {parameter} is NULL."
            : $"{function}: {parameter} (0x{handle:x}) is not a live handle of that kind (destroyed, of another kind, or never issued).");

    /// <summary>-EINVAL for a NULL pointer argument.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int Null(string function, string parameter) => Fail(Einval, $"{function}: {parameter} is NULL.");

    /// <summary>
    /// Maps what a call threw to a code and records its message: Engine's own errno, disposal as a
    /// dead handle, argument errors as EINVAL, exhaustion as ENOMEM; anything else is an internal
    /// error (EIO) whose message names the exception so it can be reported.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static int From(string function, Exception e)
    {
        try
        {
            return e switch
            {
                EngineException ee => Fail((int)ee.Errno, $"{function}: {ee.Reason}"),
                ObjectDisposedException => Fail(Ebadf, $"{function}: the object was destroyed ({e.Message})"),
                OutOfMemoryException => Fail(Enomem, $"{function}: out of memory."),
                // Without .NET's " (Parameter 'x')" suffix: a C caller never passed an argument by that name.
                ArgumentException a => Fail(Einval, $"{function}: {(a.ParamName is { } name ? a.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : a.Message)}"),
                _ => Fail(Eio, $"{function}: internal error {e.GetType().Name}: {e.Message}"),
            };
        }
        catch (Exception)
        {
            // Formatting the message itself failed (out of memory): still no exception crosses.
            LastError.SetOutOfMemory();
            return -Enomem;
        }
    }

    /// <summary>
    /// engine_strerror: a fixed description of an errno (either sign). The strings live in the
    /// library's read-only data, so they stay valid as long as the library is loaded.
    /// </summary>
    public static byte* Describe(int errno) => (errno < 0 ? -(long)errno : errno) switch
    {
        0 => Ptr("Success"u8),
        Eio => Ptr("EIO: internal error (see engine_last_error)"u8),
        Ebadf => Ptr("EBADF: bad handle (NULL, of another kind, forged or destroyed)"u8),
        Enomem => Ptr("ENOMEM: out of memory"u8),
        Efault => Ptr("EFAULT: bad address (a translation faulted)"u8),
        Ebusy => Ptr("EBUSY: device or resource busy"u8),
        Eexist => Ptr("EEXIST: already exists or overlaps"u8),
        Enodev => Ptr("ENODEV: no such device (no IOMMU in front of it)"u8),
        Einval => Ptr("EINVAL: invalid argument"u8),
        Enospc => Ptr("ENOSPC: no space left (e.g. no free domain id)"u8),
        Eopnotsupp => Ptr("EOPNOTSUPP: operation not supported"u8),
        1 => Ptr("EPERM: operation not permitted"u8),
        2 => Ptr("ENOENT: no such entry"u8),
        _ => Ptr("unknown error"u8),
    };

    // A u8 literal is a span over the image's read-only data: its address never changes.
    private static byte* Ptr(ReadOnlySpan<byte> literal) => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(literal));
}

/// <summary>
/// engine_last_error: per thread, the message of the last failing call, NUL-terminated UTF-8 in a
/// native buffer owned by that thread. The pointer handed out stays valid until the next failing
/// call on the same thread (which rewrites or replaces the buffer) or the thread's exit.
/// </summary>
internal static unsafe class LastError
{
    [ThreadStatic]
    private static Buffer? _buffer;

    [ThreadStatic]
    private static nint _static;

    /// <summary>The calling thread's message; a fixed text before its first failing call. Never null.</summary>
    public static byte* Get()
    {
        if (_static != 0)
            return (byte*)_static;
        Buffer? b = _buffer;
        return b is not null ? b.Pointer : Ptr("no failing call on this thread yet"u8);
    }

    /// <summary>Makes <paramref name="message"/> the calling thread's last error.</summary>
    public static void Set(string message)
    {
        int bytes = Encoding.UTF8.GetByteCount(message);
        Buffer b = _buffer ??= new Buffer();
        b.Ensure(bytes + 1);
        int written = Encoding.UTF8.GetBytes(message, new Span<byte>(b.Pointer, bytes));
        b.Pointer[written] = 0;
        _static = 0;
    }

    /// <summary>Makes a fixed text the last error without allocating (for when allocation itself failed).</summary>
    public static void SetOutOfMemory() => _static = (nint)Ptr("out of memory while formatting the error message"u8);

    private static byte* Ptr(ReadOnlySpan<byte> literal) => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(literal));

    /// <summary>A thread's message buffer; freed by the finalizer once the thread (and so its static) is gone.</summary>
    private sealed class Buffer
    {
        private int _capacity;

        public byte* Pointer { get; private set; }

        public void Ensure(int capacity)
        {
            if (capacity <= _capacity)
                return;
            int grown = Math.Max(capacity, 256);
            byte* fresh = (byte*)NativeMemory.Alloc((nuint)grown);
            byte* old = Pointer;
            Pointer = fresh;
            _capacity = grown;
            if (old != null)
                NativeMemory.Free(old);
        }

        ~Buffer()
        {
            if (Pointer != null)
                NativeMemory.Free(Pointer);
        }
    }
}
