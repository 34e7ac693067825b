namespace Engine;

/// <summary>Linux-style error numbers the control paths answer with (the values are Linux's).</summary>
public enum Errno
{
    /// <summary>Operation not permitted.</summary>
    EPERM = 1,

    /// <summary>No such entry.</summary>
    ENOENT = 2,

    /// <summary>Out of memory.</summary>
    ENOMEM = 12,

    /// <summary>Bad address (a fault could not be resolved).</summary>
    EFAULT = 14,

    /// <summary>Device or resource busy.</summary>
    EBUSY = 16,

    /// <summary>Already exists.</summary>
    EEXIST = 17,

    /// <summary>No such device.</summary>
    ENODEV = 19,

    /// <summary>Invalid argument.</summary>
    EINVAL = 22,

    /// <summary>No space left (e.g. no free domain id).</summary>
    ENOSPC = 28,

    /// <summary>Operation not supported.</summary>
    EOPNOTSUPP = 95,
}

/// <summary>A control-path refusal carrying an <see cref="Engine.Errno"/> and a message that says why.</summary>
public class EngineException : Exception
{
    /// <summary>Creates the exception.</summary>
    public EngineException(Errno errno, string message) : base($"{errno}: {message}")
    {
        Errno = errno;
        Reason = message;
    }

    /// <summary>The error number.</summary>
    public Errno Errno { get; }

    /// <summary>The message without the errno prefix.</summary>
    public string Reason { get; }
}
