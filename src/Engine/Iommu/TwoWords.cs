using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Engine.Iommu;

/// <summary>
/// Builds a 16-byte value from its two 8-byte words as they lie in memory. For the miss paths'
/// results and contexts (issue 14): built field by field, such a value went through the stack as
/// narrow stores read back as one wide word, a load that cannot be forwarded from the stores.
/// </summary>
internal static class TwoWords
{
    /// <summary>The <typeparamref name="T"/> whose bytes 0..7 are <paramref name="first"/> and 8..15 <paramref name="second"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Make<T>(ulong first, ulong second) where T : unmanaged
    {
        Debug.Assert(Unsafe.SizeOf<T>() == 2 * sizeof(ulong), "Only for 16-byte values.");
        Unsafe.SkipInit(out T value);
        ref ulong words = ref Unsafe.As<T, ulong>(ref value);
        words = first;
        Unsafe.Add(ref words, 1) = second;
        return value;
    }
}
