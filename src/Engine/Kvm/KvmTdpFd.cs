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
    public ExportedTdp Metadata { get; }

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
    public void RegisterImporter(ITdpImporter importer)
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
    public bool UnregisterImporter(ITdpImporter importer)
    {
        ArgumentNullException.ThrowIfNull(importer);
        lock (_importers)
            return _importers.Remove(importer);
    }

    /// <summary>KVM's fault op: makes <paramref name="gfn"/> accessible for <paramref name="access"/> (read/write/exec).</summary>
    public TdpFaultResult Fault(ulong gfn, Access access)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _vm.FaultIn(gfn, access);
    }

    internal void Notify(ulong gpa, ulong size)
    {
        lock (_importers)
        {
            foreach (ITdpImporter importer in _importers)
                importer.Invalidate(gpa, size);
        }
    }

    /// <summary>Ends the export: importers are dropped and the address space may be exported again.</summary>
    public void Dispose()
    {
        lock (_importers)
        {
            if (_disposed)
                return;
            _disposed = true;
            _importers.Clear();
        }
        _vm.OnExportClosed(this);
    }
}
