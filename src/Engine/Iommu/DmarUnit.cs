using Engine.Memory;
using Engine.Paging;

namespace Engine.Iommu;

/// <summary>
/// One VT-d DMA-remapping unit: its registers, translation structures in host memory, context/PASID
/// cache, IOTLB and invalidation interfaces, and <see cref="Translate"/>.
/// </summary>
/// <remarks>
/// <para>
/// A façade over a hot translator and three cold models. The translator (no lock, no allocation,
/// faults as values) is this class's partial files: <c>DmarUnit.Translate.cs</c> (the straight-line
/// hit, the general path, walk and fill), <c>DmarUnit.Batch.cs</c> (<see cref="TranslateBatch"/>:
/// misses grouped and walked together), <c>DmarUnit.BatchHits.cs</c> (the 8-at-a-time AVX-512 hit
/// pass) and <c>DmarUnit.Context.cs</c> (root/context/PASID resolution behind the context cache).
/// </para>
/// <para>
/// The cold models are classes of their own, each owning its state, all under one register lock:
/// <see cref="DmarRegisterModel"/> (register side effects: GCMD, CCMD, IOTLB_REG, the
/// invalidation-completion and page-request interrupt conditions), <see cref="InvalidationQueue"/>
/// (queued invalidation) and <see cref="PageRequestQueue"/> (the page-request ring and responses).
/// They reach the translator's latched state only through <see cref="IDmarUnitHost"/>, which this
/// class implements; the fault registers belong to <see cref="FaultRecorder"/>.
/// </para>
/// <para>
/// This file: construction, the latched state the translator reads, interrupt delivery, disposal.
/// <c>DmarUnit.Control.cs</c>: the control calls, forwarded to the models. <c>DmarUnit.Checkpoint.cs</c>:
/// save and restore.
/// </para>
/// </remarks>
public sealed unsafe partial class DmarUnit : IDisposable, IDmarUnitHost
{
    private readonly HostMemory _memory;
    private readonly WalkerConfig _walker;
    private readonly ContextCache _contextCache;
    private readonly ulong* _fastWords;   // the context cache's fast words, read directly by the hit path
    private readonly bool _useBatchVector;
    private readonly BatchWalkerKind _batchWalker;
    private readonly int _superpageLevel;
    private readonly int _mgaw;
    private readonly bool _legacyStylePermissions;
    private ulong _rootTable;
    private bool _scalableRoot;
    private bool _translationEnabled;
    private bool _invalidTtm;
    private bool _disposed;
    private readonly DmarRegisterModel _registerModel;
    private readonly InvalidationQueue _invalidationQueue;
    private readonly PageRequestQueue _pageRequestQueue;

    /// <summary>Creates a unit whose tables live in <paramref name="memory"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (context-cache slots not a power of two, a batch walker that does not exist).</exception>
    /// <exception cref="NotSupportedException">The batch walker asked for (or named by <c>ENGINE_BATCH_WALKER</c>) does not run on this CPU.</exception>
    /// <exception cref="InvalidOperationException"><c>ENGINE_BATCH_WALKER</c> names no walker and the options name none either.</exception>
    public DmarUnit(HostMemory memory, DmarUnitOptions options)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(options);
        if (options.ContextCacheSlots < 1 || (options.ContextCacheSlots & (options.ContextCacheSlots - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.ContextCacheSlots, "ContextCacheSlots must be a power of two.");
        // Configuration, resolved first (control path: a walker that cannot run throws now, before
        // anything is built, and never in a batch).
        BatchWalker = BatchWalkerDefault.Resolve(options.BatchWalker);
        _batchWalker = BatchWalker.Kind;
        Options = options;
        _memory = memory;
        Cap = options.Cap;
        Ecap = options.Ecap;
        Driver = new DriverView(Cap, Ecap);
        _superpageLevel = Driver.SuperpageLevel;
        _mgaw = Cap.Mgaw;
        _legacyStylePermissions = options.ScalablePermissionFaults == ScalablePermissionFaultStyle.ByRequest;
        _walker = WalkerConfig.SecondStage(memory.HostAddressWidth, _superpageLevel, Ecap.SnoopControl, Ecap.DeviceTlb, executeRequests: false);
        Registers = DmarRegisters.CreateFile(Cap, Ecap);
        Iotlb = new Iotlb(options.IotlbSets, options.UseSimd);
        _contextCache = new ContextCache(options.ContextCacheSlots);
        _fastWords = _contextCache.FastWords;
        _useBatchVector = options.UseSimd && BatchHitsUseVector512;
        FaultRecorder = new FaultRecorder(Registers, Cap, options.FaultCollapsing);
        // The recorder does not know its unit; the unit adds itself as the sender.
        FaultRecorder.FaultEvent += () => Interrupt?.Invoke(this, DmarInterruptEventArgs.Fault);
        // The models act on register writes from here on, each on its own registers.
        _registerModel = new DmarRegisterModel(this, Registers, Cap, Ecap, Iotlb);
        _pageRequestQueue = new PageRequestQueue(this, _registerModel, Registers, memory, Ecap, Name);
        _invalidationQueue = new InvalidationQueue(this, _registerModel, _pageRequestQueue, Registers, FaultRecorder, memory, Ecap, Name);
    }

    /// <summary>
    /// Every interrupt of the unit — fault, invalidation completion, page request — with the unit as
    /// the sender, so one handler can serve several units (as an interrupt controller does).
    /// </summary>
    /// <remarks>
    /// Raised at the same moments as <see cref="FaultRecorder.FaultEvent"/>, <see cref="InvalidationEvent"/>
    /// and <see cref="PageRequestEvent"/>, right after them, on the thread that caused the interrupt
    /// (a translation that faulted, the write of IQT, a page request, the write that unmasked a held
    /// interrupt). Those three stay for existing subscribers; new code should use this one.
    /// </remarks>
    public event EventHandler<DmarInterruptEventArgs>? Interrupt;

    /// <summary>
    /// The invalidation-completion interrupt: a wait descriptor with IF completes while ICS.IWC is clear (a new
    /// condition) and IECTL.IM is clear; with IM set IECTL.IP holds it until software clears IM (the event is
    /// raised then) or services it by clearing IWC (it is dropped).
    /// </summary>
    internal event Action? InvalidationEvent;

    /// <summary>
    /// Raised after a page request is queued, unless PECTL.IM masks the event: then PECTL.IP holds it until
    /// software clears IM (the event is raised then) or clears PRS.PPR (it is dropped).
    /// </summary>
    internal event Action? PageRequestEvent;

    // The legacy event of the kind first, then Interrupt with the unit as the sender.
    void IDmarUnitHost.RaiseInterrupt(DmarInterruptKind kind)
    {
        if (kind == DmarInterruptKind.PageRequest)
        {
            PageRequestEvent?.Invoke();
            Interrupt?.Invoke(this, DmarInterruptEventArgs.PageRequest);
        }
        else
        {
            InvalidationEvent?.Invoke();
            Interrupt?.Invoke(this, DmarInterruptEventArgs.InvalidationComplete);
        }
    }

    // SRTP's latches, written under the register lock and read by translations without one.
    void IDmarUnitHost.LatchRootTable(ulong rootTable, bool scalable, bool invalidTtm)
    {
        Volatile.Write(ref _rootTable, rootTable);
        Volatile.Write(ref _scalableRoot, scalable);
        _invalidTtm = invalidTtm;
    }

    void IDmarUnitHost.LatchTranslationEnabled(bool enabled) => Volatile.Write(ref _translationEnabled, enabled);

    void IDmarUnitHost.InvalidateContextCache() => _contextCache.InvalidateAll();

    /// <summary>How the unit was built.</summary>
    public DmarUnitOptions Options { get; }

    /// <summary>Name for diagnostics.</summary>
    public string Name => Options.Name;

    /// <summary>The capability register.</summary>
    public CapabilityRegister Cap { get; }

    /// <summary>The extended capability register.</summary>
    public ExtendedCapabilityRegister Ecap { get; }

    /// <summary>What the Linux driver derives from CAP/ECAP.</summary>
    public DriverView Driver { get; }

    /// <summary>The register page.</summary>
    internal RegisterFile Registers { get; }

    /// <summary>The IOTLB.</summary>
    internal Iotlb Iotlb { get; }

    /// <summary>Primary fault logging into the fault-recording registers, with counters and a callback for embedders.</summary>
    internal FaultRecorder FaultRecorder { get; }

    /// <summary>Host memory the unit's structures live in.</summary>
    public HostMemory Memory => _memory;

    /// <summary>The batch walker <see cref="TranslateBatch"/> walks misses with, and why it was chosen.</summary>
    internal BatchWalkerSelection BatchWalker { get; }

    /// <summary>The second-stage walker configuration of this unit (HAW, superpages, SC, DT).</summary>
    internal WalkerConfig WalkerConfig => _walker;

    /// <summary>Whether GCMD.TE is set (GSTS.TES).</summary>
    public bool TranslationEnabled => Volatile.Read(ref _translationEnabled);

    /// <summary>The latched root-table address (GSTS.RTPS), or 0.</summary>
    public ulong RootTableAddress => Volatile.Read(ref _rootTable);

    /// <summary>Whether the latched root table is in scalable mode (RTADDR.TTM = 01).</summary>
    public bool ScalableMode => Volatile.Read(ref _scalableRoot);

    /// <summary>Context-cache and PASID-cache invalidations so far (the cache's generation).</summary>
    public uint ContextCacheGeneration => _contextCache.Generation;

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>
    /// Takes the unit out of service. Every translation that starts afterwards answers
    /// <see cref="TranslationStatus.Disposed"/> (no address, never pass-through), and every control
    /// call (registers, queues, page requests) throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    /// <remarks>
    /// A translation that started before may still finish with the answer it would have given
    /// before; it never reads freed memory: the IOTLB and context cache stay allocated until the unit
    /// is unreachable (see <c>PinnedWords</c>), and walks are protected by the host memory's epochs.
    /// Disposing the unit does not dispose its <see cref="Memory"/>.
    /// </remarks>
    public void Dispose()
    {
        // Under the register lock, so a GCMD write racing this cannot turn translation back on.
        lock (_registerModel.Lock)
        {
            if (_disposed)
                return;
            // The flag before TE: a translation that sees TE off and then reads the flag sees it set.
            Volatile.Write(ref _disposed, true);
            Volatile.Write(ref _translationEnabled, false);
            _registerModel.Detach();
            _invalidationQueue.Detach();
        }
        FaultRecorder.Dispose();
        Iotlb.Dispose();
        _contextCache.Dispose();
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> once the unit is disposed (control paths).</summary>
    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
}
