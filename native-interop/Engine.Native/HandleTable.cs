using System.Runtime.CompilerServices;

namespace Engine.Native;

/// <summary>What a handle names; part of the handle's value, so a handle of one kind is never taken for another.</summary>
internal enum HandleKind : byte
{
    Platform = 1,
    Iommu = 2,
    Device = 3,
    Vm = 4,
    Domain = 5,
}

/// <summary>An object C holds a handle to. The handle value is fixed at registration and never reused.</summary>
internal abstract class HandleObject(HandleKind kind)
{
    public HandleKind Kind { get; } = kind;

    /// <summary>The value C holds; 0 until registered.</summary>
    public nint Handle { get; set; }
}

/// <summary>
/// The table that turns the opaque pointers C holds into objects. A handle is not an address:
/// <code>
/// 63:60 magic 0xE | 59:28 generation (32 bits) | 27:4 slot index (24 bits) | 3:0 kind
/// </code>
/// so it is never 0, never a canonical x86-64 address (dereferencing one faults at once), and a
/// destroyed handle stays dead: its slot's next occupant has another generation.
/// </summary>
/// <remarks>
/// <para>
/// Readers are lock-free and allocation-free: <see cref="Resolve"/> is two dependent loads (the
/// segment, then the slot) and one compare of the stored handle against the one given. Segments are
/// allocated once and never freed or moved, so a reader can never see a table being resized.
/// </para>
/// <para>
/// Ordering: <see cref="Register"/> writes the object's handle before it publishes the object in its
/// slot (a release store), so a reader that finds the object sees its handle. <see cref="Release"/>
/// clears the slot; a reader that loaded the object just before still finds its handle equal and
/// goes on to use an object that is being torn down — which Engine answers as disposed
/// (<c>TranslationStatus.Disposed</c> or <see cref="ObjectDisposedException"/>), mapped to -EBADF.
/// </para>
/// <para>Writers (create and destroy, control paths) serialize on one lock.</para>
/// </remarks>
internal static class HandleTable
{
    private const int SegmentBits = 12;
    private const int SegmentSize = 1 << SegmentBits;
    private const int SegmentCount = 1 << 12;
    private const int IndexBits = 24;
    private const int IndexShift = 4;
    private const int GenerationShift = 28;
    private const ulong Magic = 0xEUL << 60;
    private const ulong MagicMask = 0xFUL << 60;

    private static readonly HandleObject?[]?[] Segments = new HandleObject?[SegmentCount][];
    private static readonly Lock WriteLock = new();
    private static readonly Stack<int> FreeSlots = new();
    private static readonly uint[]?[] Generations = new uint[SegmentCount][];
    private static int _nextFresh;

    /// <summary>The object behind <paramref name="handle"/> if it is a live handle of <paramref name="kind"/>; otherwise null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HandleObject? Resolve(nint handle, HandleKind kind)
    {
        ulong h = (ulong)handle;
        if ((h & (MagicMask | 0xF)) != (Magic | (byte)kind))
            return null;
        uint index = (uint)(h >> IndexShift) & ((1u << IndexBits) - 1);
        HandleObject?[]? segment = Volatile.Read(ref Segments[index >> SegmentBits]);
        if (segment is null)
            return null;
        HandleObject? o = Volatile.Read(ref segment[index & (SegmentSize - 1)]);
        return o is not null && o.Handle == handle ? o : null;
    }

    /// <summary>The live object of type <typeparamref name="T"/> behind <paramref name="handle"/>, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T? Get<T>(nint handle, HandleKind kind)
        where T : HandleObject
    {
        HandleObject? o = Resolve(handle, kind);
        // Each kind is one class (the handle's kind bits were checked against the stored handle),
        // so the cast cannot fail; Unsafe.As skips the type check on the hot path.
        return o is null ? null : Unsafe.As<T>(o);
    }

    /// <summary>Gives <paramref name="o"/> a handle and publishes it.</summary>
    /// <exception cref="OutOfMemoryException">All 16,777,216 slots are in use.</exception>
    public static nint Register(HandleObject o)
    {
        lock (WriteLock)
        {
            int index;
            if (!FreeSlots.TryPop(out index))
            {
                if (_nextFresh >= SegmentCount * SegmentSize)
                    throw new OutOfMemoryException("the handle table is full (16,777,216 live handles).");
                index = _nextFresh++;
                if (Segments[index >> SegmentBits] is null)
                {
                    Generations[index >> SegmentBits] = new uint[SegmentSize];
                    Volatile.Write(ref Segments[index >> SegmentBits], new HandleObject?[SegmentSize]);
                }
            }
            ref uint generation = ref Generations[index >> SegmentBits]![index & (SegmentSize - 1)];
            generation++;
            o.Handle = (nint)(Magic | (ulong)generation << GenerationShift | (ulong)(uint)index << IndexShift | (byte)o.Kind);
            Volatile.Write(ref Segments[index >> SegmentBits]![index & (SegmentSize - 1)], o);
            return o.Handle;
        }
    }

    /// <summary>Kills <paramref name="o"/>'s handle: later lookups of it find nothing. Idempotent.</summary>
    public static void Release(HandleObject o)
    {
        lock (WriteLock)
        {
            ulong h = (ulong)o.Handle;
            if (h == 0)
                return;
            int index = (int)((h >> IndexShift) & ((1u << IndexBits) - 1));
            ref HandleObject? slot = ref Segments[index >> SegmentBits]![index & (SegmentSize - 1)];
            if (ReferenceEquals(slot, o))
            {
                Volatile.Write(ref slot, null);
                // 2^32 generations per slot: a stale handle matches again only after that many reuses.
                FreeSlots.Push(index);
            }
        }
    }
}
