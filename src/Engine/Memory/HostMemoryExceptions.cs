namespace Engine.Memory;

/// <summary>
/// Thrown when host memory has no free frame (or no free run of the size asked for) left. It is an
/// <see cref="EngineException"/> with <see cref="Errno.ENOMEM"/>, so every control call that runs out of
/// memory (a VM's map as much as an attach) can be caught the same way.
/// </summary>
public sealed class HostMemoryExhaustedException : EngineException
{
    /// <summary>Creates the exception with a message that says what was asked for.</summary>
    public HostMemoryExhaustedException(string message) : base(Errno.ENOMEM, message) { }
}

/// <summary>
/// Thrown when a host-physical address handed to host memory is not acceptable: unaligned, outside
/// the region, or in the wrong state for the call (a double free, a free of a frame never allocated).
/// </summary>
public sealed class InvalidHostAddressException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="hpa"/>.</summary>
    public InvalidHostAddressException(ulong hpa, string message, string? paramName = null)
        : base($"HPA 0x{hpa:x}: {message}", paramName)
    {
        Hpa = hpa;
    }

    /// <summary>The offending host-physical address.</summary>
    public ulong Hpa { get; }
}
