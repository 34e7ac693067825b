namespace Engine.Kvm;

/// <summary>Properties of a memslot (KVM_MEM_* in spirit).</summary>
[Flags]
public enum MemslotFlags
{
    /// <summary>Ordinary read/write guest RAM.</summary>
    None = 0,

    /// <summary>Guest RAM the guest may not write (KVM_MEM_READONLY): mapped without W, write faults fail.</summary>
    ReadOnly = 1,

    /// <summary>Dirty logging is on (KVM_MEM_LOG_DIRTY_PAGES): pages map at 4K and read-only until written.</summary>
    LogDirtyPages = 2,
}
