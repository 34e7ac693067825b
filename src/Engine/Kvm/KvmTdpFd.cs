using Engine.Paging;

namespace Engine.Kvm;

/// <summary>
/// An exported TDP, the model of KVM's TDP FD (<c>KVM_CREATE_TDP_FD</c>, SPEC.md §1.3): metadata,
/// an importer registry, and the fault op. One per address space; disposing it ends the export.
/// </summary>
public sealed class KvmTdpFd : IDisposable
{
    private readonly Vm _vm;
    private readonly List<ITdpImporter> _importers = [];
    private bool _disposed;

    internal KvmTdpFd(Vm vm, int addressSpaceId, ExportedTdp metadata)
    {
        _vm = vm;
        AddressSpaceId = addressSpaceId;
        Metadata = metadata;
    }

    /// <summary>The KVM address space exported (0).</summary>
    public int AddressSpaceId { get; }

    /// <summary>The vendor metadata (<c>get_metadata</c>).</summary>
    internal ExportedTdp Metadata { get; }

    /// <summary>The VM whose TDP this is.</summary>
    public Vm Vm => _vm;

    /// <summary>Importers currently registered.</summary>
    public int ImporterCount
    {
        get
        {
            lock (_importers)
                return _importers.Count;
        }
    }

    /// <summary>Registers an importer for invalidation callbacks (<c>register_importer</c>).</summary>
    /// <exception cref="EngineException">EBUSY when the same importer is already registered; ENODEV after the export ended.</exception>
    internal void RegisterImporter(ITdpImporter importer)
    {
        ArgumentNullException.ThrowIfNull(importer);
        lock (_importers)
        {
            if (_disposed)
                throw new EngineException(Errno.ENODEV, "the TDP export has been closed.");
            if (_importers.Contains(importer))
                throw new EngineException(Errno.EBUSY, "this importer is already registered with the exported TDP.");
            _importers.Add(importer);
        }
    }

    /// <summary>Removes an importer (<c>unregister_importer</c>).</summary>
    /// <returns>False when it was not registered.</returns>
    internal bool UnregisterImporter(ITdpImporter importer)
    {
        ArgumentNullException.ThrowIfNull(importer);
        lock (_importers)
            return _importers.Remove(importer);
    }

    /// <summary>Whether the export has ended (disposed, or its VM disposed).</summary>
    public bool IsClosed => Volatile.Read(ref _disposed);

    /// <summary>KVM's fault op: makes <paramref name="gfn"/> accessible for <paramref name="access"/> (read/write/exec).</summary>
    /// <exception cref="ObjectDisposedException">The export has ended (or its VM was disposed).</exception>
    internal TdpFaultResult Fault(ulong gfn, Access access)
    {
        ObjectDisposedException.ThrowIf(IsClosed, this);
        return _vm.FaultIn(gfn, access);
    }

    /// <summary>The fault op for an importer's page request: a closed export is an answer, not an exception.</summary>
    internal TdpFaultResult FaultForImporter(ulong gfn, Access access) =>
        IsClosed ? TdpFaultResult.ExportClosed : _vm.FaultInForImporter(gfn, access);

    internal void Notify(ulong gpa, ulong size)
    {
        lock (_importers)
        {
            foreach (ITdpImporter importer in _importers)
                importer.Invalidate(gpa, size);
        }
    }

    /// <summary>
    /// Ends the export: every importer still registered is revoked (<see cref="ITdpImporter.Revoke"/>:
    /// a KVM domain detaches its devices, so their DMA faults from then on), and the address space
    /// may be exported again. Idempotent.
    /// </summary>
    /// <remarks>
    /// The series cannot close a TDP FD under an importer (IOMMUFD holds a reference); here the
    /// importers are revoked under the VM's MMU lock, so no KVM flush can fall between their last
    /// invalidation and their revocation.
    /// </remarks>
    /// <exception cref="InvalidOperationException">An importer failed to stop; the export is closed anyway.</exception>
    public void Dispose() => _vm.CloseExport(this);

    /// <summary>Closes the export and revokes its importers. Caller holds the VM's MMU lock.</summary>
    /// <returns>What the importers that could not stop threw; null when every one stopped (or the export was closed already).</returns>
    internal List<Exception>? CloseLocked()
    {
        ITdpImporter[] importers;
        lock (_importers)
        {
            if (_disposed)
                return null;
            Volatile.Write(ref _disposed, true);
            importers = [.. _importers];
            _importers.Clear();
        }
        // Outside the importer lock: a revoking domain takes the platform's control lock, which
        // Domain.Dispose holds while it unregisters (control lock -> importer lock).
        List<Exception>? failures = null;
        foreach (ITdpImporter importer in importers)
        {
            try
            {
                importer.Revoke();
            }
#pragma warning disable CA1031 // Every importer must be asked even when one fails; the failures are rethrown by the caller.
            catch (Exception e)
#pragma warning restore CA1031
            {
                (failures ??= []).Add(e);
            }
        }
        return failures;
    }
}
