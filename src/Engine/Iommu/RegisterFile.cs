using System.Collections.Frozen;

namespace Engine.Iommu;

/// <summary>One register's declaration: where it is, how wide, its reset value and which bits software may change.</summary>
/// <param name="Name">The spec's name (e.g. "FSTS_REG").</param>
/// <param name="Offset">Byte offset in the register page.</param>
/// <param name="Width">4 or 8 bytes.</param>
/// <param name="Reset">Value after reset.</param>
/// <param name="WritableMask">Bits a write replaces.</param>
/// <param name="WriteOneToClearMask">Bits a write of 1 clears (RW1C).</param>
internal sealed record RegisterDeclaration(string Name, int Offset, int Width, ulong Reset, ulong WritableMask, ulong WriteOneToClearMask);

/// <summary>How a register access ended.</summary>
public enum RegisterAccessStatus
{
    /// <summary>The access was applied.</summary>
    Ok = 0,

    /// <summary>No register is declared at that offset; reads return 0 and writes are dropped (as QEMU does).</summary>
    UnknownOffset,

    /// <summary>The size is not 4 or 8, or not the register's width (a 4-byte access to either half of a 64-bit register is allowed).</summary>
    BadSize,

    /// <summary>The offset is not aligned to the access size.</summary>
    Misaligned,
}

/// <summary>
/// A table-driven register page (QEMU's style): every register declared once with its reset value,
/// writable mask and write-1-to-clear mask; one generic read and one generic write apply them.
/// 32-bit accesses to either half of a 64-bit register are allowed, as on hardware.
/// </summary>
/// <remarks>Side effects (GCMD commands, invalidations) belong to the owner, which is told of every applied write.</remarks>
internal sealed partial class RegisterFile
{
    private readonly FrozenDictionary<int, RegisterDeclaration> _declarations;
    private readonly Dictionary<int, ulong> _values = [];
    private readonly Lock _lock = new();

    /// <summary>Creates the page from declarations; offsets must not overlap.</summary>
    public RegisterFile(IEnumerable<RegisterDeclaration> declarations)
    {
        ArgumentNullException.ThrowIfNull(declarations);
        var map = new Dictionary<int, RegisterDeclaration>();
        foreach (RegisterDeclaration? d in declarations)
        {
            if (d is null)
                throw new ArgumentException("A register declaration is null.", nameof(declarations));
            if (d.Width is not (4 or 8) || d.Offset < 0 || d.Offset % d.Width != 0)
                throw new ArgumentException($"{d.Name}: width must be 4 or 8 and the offset 0x{d.Offset:x} aligned to it.", nameof(declarations));
            foreach (var other in map.Values)
            {
                // In long: a register at the top of the int range would wrap the end offset and hide an overlap.
                if (d.Offset < (long)other.Offset + other.Width && other.Offset < (long)d.Offset + d.Width)
                    throw new ArgumentException($"{d.Name} at 0x{d.Offset:x} overlaps {other.Name} at 0x{other.Offset:x}.", nameof(declarations));
            }
            map[d.Offset] = d;
        }
        _declarations = map.ToFrozenDictionary();
        Reset();
    }

    /// <summary>The declarations by offset.</summary>
    public IReadOnlyDictionary<int, RegisterDeclaration> Declarations => _declarations;

    /// <summary>Raised after every applied write with (offset of the register, value before, value after).</summary>
    public event Action<RegisterDeclaration, ulong, ulong>? Written;

    /// <summary>Puts every register back to its reset value.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            foreach (var d in _declarations.Values)
                _values[d.Offset] = d.Reset;
        }
    }

    /// <summary>A software read of <paramref name="size"/> bytes at <paramref name="offset"/>.</summary>
    public RegisterAccessStatus Read(int offset, int size, out ulong value)
    {
        value = 0;
        RegisterAccessStatus status = Locate(offset, size, out RegisterDeclaration? d, out int shift);
        if (status != RegisterAccessStatus.Ok)
            return status;
        lock (_lock)
            value = (_values[d!.Offset] >> shift) & SizeMask(size);
        return RegisterAccessStatus.Ok;
    }

    /// <summary>A software write of <paramref name="size"/> bytes at <paramref name="offset"/>: writable bits are replaced, RW1C bits cleared where 1 is written, read-only bits kept.</summary>
    public RegisterAccessStatus Write(int offset, int size, ulong value)
    {
        RegisterAccessStatus status = Locate(offset, size, out RegisterDeclaration? d, out int shift);
        if (status != RegisterAccessStatus.Ok)
            return status;
        ulong lane = SizeMask(size) << shift;
        ulong incoming = (value & SizeMask(size)) << shift;
        ulong before, after;
        lock (_lock)
        {
            before = _values[d!.Offset];
            ulong writable = d.WritableMask & lane;
            ulong clear = d.WriteOneToClearMask & lane & incoming;
            after = ((before & ~writable) | (incoming & writable)) & ~clear;
            _values[d.Offset] = after;
        }
        Written?.Invoke(d, before, after);
        return RegisterAccessStatus.Ok;
    }

    /// <summary>The hardware's own update of a register (status bits, heads), ignoring the software masks.</summary>
    /// <exception cref="ArgumentException">No register is declared at <paramref name="offset"/>.</exception>
    public void SetByHardware(int offset, ulong value)
    {
        if (!_declarations.ContainsKey(offset))
            throw new ArgumentException($"No register is declared at 0x{offset:x}.", nameof(offset));
        lock (_lock)
            _values[offset] = value;
    }

    /// <summary>The whole register at <paramref name="offset"/>, as hardware sees it.</summary>
    /// <exception cref="ArgumentException">No register is declared at <paramref name="offset"/>.</exception>
    public ulong Get(int offset)
    {
        lock (_lock)
        {
            return _values.TryGetValue(offset, out ulong v) ? v : throw new ArgumentException($"No register is declared at 0x{offset:x}.", nameof(offset));
        }
    }

    private RegisterAccessStatus Locate(int offset, int size, out RegisterDeclaration? declaration, out int shift)
    {
        declaration = null;
        shift = 0;
        if (size is not (4 or 8))
            return RegisterAccessStatus.BadSize;
        if (offset < 0 || offset % size != 0)
            return RegisterAccessStatus.Misaligned;
        if (_declarations.TryGetValue(offset, out declaration))
            return size <= declaration.Width ? RegisterAccessStatus.Ok : RegisterAccessStatus.BadSize;
        // The upper half of a 64-bit register.
        if (size == 4 && _declarations.TryGetValue(offset - 4, out declaration) && declaration.Width == 8)
        {
            shift = 32;
            return RegisterAccessStatus.Ok;
        }
        declaration = null;
        return RegisterAccessStatus.UnknownOffset;
    }

    private static ulong SizeMask(int size) => size == 8 ? ulong.MaxValue : 0xFFFF_FFFFUL;
}
