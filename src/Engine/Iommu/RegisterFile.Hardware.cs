namespace Engine.Iommu;

// The hardware's read-modify-write of a register, for status words that software and hardware
// both change (FSTS: hardware sets PPF/PFO/IQE while software writes 1 to clear PFO/IQE).
internal sealed partial class RegisterFile
{
    /// <summary>
    /// The hardware's atomic update of the register at <paramref name="offset"/>: clears the bits in
    /// <paramref name="clear"/>, then sets those in <paramref name="set"/> (QEMU's <c>vtd_set_clear_mask_*</c>).
    /// </summary>
    /// <remarks>
    /// <see cref="Get"/> followed by <see cref="SetByHardware"/> is not enough for such registers: a software
    /// write-1-to-clear landing between the two would be undone by the stale value written back. Here the read
    /// and the write happen under the page's lock, the same lock <see cref="Write"/> applies software writes under.
    /// Like <see cref="SetByHardware"/>, this ignores the software masks and raises no <see cref="Written"/>.
    /// </remarks>
    /// <param name="offset">Offset of a declared register.</param>
    /// <param name="clear">Bits to clear.</param>
    /// <param name="set">Bits to set (applied after <paramref name="clear"/>).</param>
    /// <param name="before">The register's value before the update.</param>
    /// <returns>The register's value after the update.</returns>
    /// <exception cref="ArgumentException">No register is declared at <paramref name="offset"/>.</exception>
    public ulong UpdateByHardware(int offset, ulong clear, ulong set, out ulong before)
    {
        lock (_lock)
        {
            if (!_values.TryGetValue(offset, out before))
                throw new ArgumentException($"No register is declared at 0x{offset:x}.", nameof(offset));
            ulong after = (before & ~clear) | set;
            _values[offset] = after;
            return after;
        }
    }
}
