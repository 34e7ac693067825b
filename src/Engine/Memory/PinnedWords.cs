using System.Runtime.CompilerServices;

namespace Engine.Memory;

/// <summary>
/// A zeroed, cache-line-aligned block of 64-bit words on the pinned object heap, for the arrays the
/// hot path reads through a raw pointer without entering an epoch (the IOTLB, the context cache's
/// fast words).
/// </summary>
/// <remarks>
/// Why not native memory: a translation reads these words with no protection at all — an epoch
/// entry (a thread-slot lookup and two stores; a fenced store before issue 14) would add to every
/// IOTLB hit. So nothing can tell when the last reader of a disposed unit has left, and freeing
/// native memory in <c>Dispose</c> could pull it from under a thread still translating (an access
/// violation, or a hit read from memory that now belongs to someone else). The pinned heap never moves the block, and the GC frees it
/// only once its owner is unreachable: a thread inside a method of the owner keeps the owner alive
/// (the owners end their hot methods with <see cref="GC.KeepAlive"/>), so reachability is the grace
/// period, at no cost to the reader. <see cref="EpochManager"/> keeps its slots the same way.
/// </remarks>
internal readonly unsafe struct PinnedWords
{
    private const int LineWords = 8;

    // Holds the block alive for as long as the struct's owner is; the pointer is derived from it.
    private readonly ulong[] _array;

    /// <summary>Allocates <paramref name="words"/> zeroed words starting on a 64-byte boundary.</summary>
    /// <exception cref="ArgumentOutOfRangeException">More words than one array can hold.</exception>
    public PinnedWords(long words)
    {
        if (words < 1 || words > Array.MaxLength - LineWords)
            throw new ArgumentOutOfRangeException(nameof(words), words, $"A pinned block holds 1 to {Array.MaxLength - LineWords} words.");
        // One spare line so the first word can start on a cache-line boundary.
        _array = GC.AllocateArray<ulong>((int)words + LineWords, pinned: true);
        nint start = (nint)Unsafe.AsPointer(ref _array[0]);
        Pointer = (ulong*)((start + 63) & ~(nint)63);
        Length = words;
    }

    /// <summary>The first word (64-byte aligned); valid for as long as this block is reachable.</summary>
    public ulong* Pointer { get; }

    /// <summary>Words in the block.</summary>
    public long Length { get; }

    /// <summary>Sets words [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) to zero.</summary>
    public void Clear(long start, long count) => new Span<ulong>(Pointer + start, checked((int)count)).Clear();

    /// <summary>Writes the block sparsely for a checkpoint: the count of non-zero words, then each as (u32 index, u64 value).</summary>
    public void Save(CheckpointWriter w)
    {
        var words = new ReadOnlySpan<ulong>(Pointer, checked((int)Length));
        int nonZero = words.Length - words.Count(0UL);
        w.U32((uint)Length);
        w.U32((uint)nonZero);
        for (int i = 0; i < words.Length; i++)
        {
            if (words[i] != 0)
            {
                w.U32((uint)i);
                w.U64(words[i]);
            }
        }
    }

    /// <summary>Reads what <see cref="Save"/> wrote into this block (of the same length); every other word becomes zero.</summary>
    public void Restore(CheckpointReader r, string what)
    {
        long at = r.Offset;
        uint length = r.U32(what + " length in words");
        if (length != Length)
            throw new InvalidDataException($"checkpoint offset {at} (section {r.Section}): expected {what} of {Length} words (the size this platform was built with), found {length}.");
        int nonZero = r.Count(what + ": non-zero words", 12, (int)Length);
        Clear(0, Length);
        long previous = -1;
        for (int i = 0; i < nonZero; i++)
        {
            uint index = r.U32(what + ": a word index");
            if (index >= Length || index <= previous)
                throw r.Fail($"{what}: word indices in increasing order below {Length}, found {index}", 4);
            previous = index;
            Pointer[index] = r.U64(what + ": a word");
        }
    }
}
