namespace Engine.Memory;

/// <summary>Life cycle of one 4 KiB host frame.</summary>
public enum FrameState : byte
{
    /// <summary>Never handed out; its memory is untouched and reads as zero.</summary>
    Fresh = 0,

    /// <summary>Owned by a caller.</summary>
    Allocated = 1,

    /// <summary>Given back, but a walker that entered before the retirement may still read it.</summary>
    Retired = 2,

    /// <summary>In the free pool, ready to be handed out again (zeroed on the way out).</summary>
    Free = 3,

    /// <summary>Inside a region the embedder registered: always usable, never allocated or freed by Engine.</summary>
    Embedder = 4,
}
