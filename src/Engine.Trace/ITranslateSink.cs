using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Engine.Paging;

namespace Engine.Trace;

/// <summary>Takes runs of translate records from <see cref="TraceReader.ReadTranslates"/> (a struct, so the reader is specialized for it).</summary>
public interface ITranslateSink
{
    /// <summary>
    /// A run of checked translate records, 16 bytes each as docs/trace-format.md lays them out
    /// (kind, access, device, PASID, IOVA); <see cref="TranslateRecords"/> reads them.
    /// </summary>
    void Translate(ReadOnlySpan<byte> records);
}

/// <summary>A sink that counts what its translations came to.</summary>
public interface ITallySink
{
    /// <summary>The results so far.</summary>
    ReplayTally Result { get; }
}

/// <summary>Reads the fields of translate records in a run <see cref="ITranslateSink.Translate"/> was handed.</summary>
public static class TranslateRecords
{
    /// <summary>Bytes of one translate record.</summary>
    public const int Size = 16;

    /// <summary>The fields of the record at byte <paramref name="at"/> of <paramref name="run"/> (unchecked: the reader checked them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static (int Device, ulong Iova, Access Access, uint Pasid) At(ref byte run, int at)
    {
        ulong head = Le(Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref run, at)));
        return ((int)(head >> 16) & 0xFFFF, Le(Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref run, at + 8))), (Access)(byte)(head >> 8), (uint)(head >> 32));
    }

    /// <summary>The start of <paramref name="run"/>, for <see cref="At"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte Start(ReadOnlySpan<byte> run) => ref MemoryMarshal.GetReference(run);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Le(ulong v) => BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
}
