using System.Runtime.CompilerServices;
using Engine.Memory;
using Engine.Paging;

namespace Engine.Iommu;

/// <summary>
/// One VT-d DMA-remapping unit: its registers, translation structures in host memory, context/PASID
/// cache, IOTLB and invalidation interfaces, and <see cref="Translate"/>.
/// </summary>
/// <remarks>
/// <para>
/// A façade over a hot translator and three cold models, each owning its own state.
/// </para>
/// <para>
/// The translator, <see cref="Iommu.Translator"/> (no lock, no allocation, faults as values), owns the
/// context cache and its fast words, the IOTLB, the walker configuration, the counters and the latches
/// it reads (root table, scalable mode, TE, disposal). It is a struct held in place in this unit
/// (<see cref="Translator"/>), so that the inlined <see cref="Translate"/> reads its fields off the
/// unit with no extra load. Its files: <c>Translator.cs</c> (fields, construction, latches, disposal),
/// <c>Translator.Translate.cs</c> (the straight-line hit, the general path, walk and fill, faults),
/// <c>Translator.Batch.cs</c> (<see cref="TranslateBatch"/>: misses grouped and walked together),
/// <c>Translator.BatchHits.cs</c> (the 8-at-a-time AVX-512 hit pass), <c>Translator.Context.cs</c>
/// (root/context/PASID resolution behind the context cache) and <c>Translator.Checkpoint.cs</c> (its
/// part of a checkpoint).
/// </para>
/// <para>
/// The cold models are classes of their own, all under one register lock:
/// <see cref="DmarRegisterModel"/> (register side effects: GCMD, CCMD, IOTLB_REG, the
/// invalidation-completion and page-request interrupt conditions), <see cref="InvalidationQueue"/>
/// (queued invalidation) and <see cref="PageRequestQueue"/> (the page-request ring and responses).
/// They reach the translator's latches only through <see cref="IDmarUnitHost"/>, which this class
/// implements by forwarding to the translator; the fault registers belong to <see cref="FaultRecorder"/>.
/// </para>
/// <para>
/// This file: construction, the translation calls and counters (forwarders to the translator),
/// interrupt delivery, the latches the models set, disposal. <c>DmarUnit.Control.cs</c>: the control
/// calls, forwarded to the models. <c>DmarUnit.Checkpoint.cs</c>: save and restore.
/// </para>
/// </remarks>
public sealed unsafe partial class DmarUnit : IDisposable, IDmarUnitHost
{
    private readonly HostMemory _memory;
    // A struct, used in place and never copied (see Translator). Not readonly: a readonly field would
    // hand every call a defensive copy, and the latches would be written into the copy.
    private Translator _translator;
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
        Options = options;
        _memory = memory;
        Cap = options.Cap;
        Ecap = options.Ecap;
        Driver = new DriverView(Cap, Ecap);
        Registers = DmarRegisters.CreateFile(Cap, Ecap);
        FaultRecorder = new FaultRecorder(Registers, Cap, options.FaultCollapsing);
        _translator = new Translator(this, memory, options, BatchWalker.Kind, Driver.SuperpageLevel, FaultRecorder);
        // The recorder does not know its unit; the unit adds itself as the sender.
        FaultRecorder.FaultEvent += () => Interrupt?.Invoke(this, DmarInterruptEventArgs.Fault);
        // The models act on register writes from here on, each on its own registers.
        _registerModel = new DmarRegisterModel(this, Registers, Cap, Ecap, _translator.Iotlb);
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
    void IDmarUnitHost.LatchRootTable(ulong rootTable, bool scalable, bool invalidTtm) => _translator.LatchRootTable(rootTable, scalable, invalidTtm);

    void IDmarUnitHost.LatchTranslationEnabled(bool enabled) => _translator.LatchTranslationEnabled(enabled);

    void IDmarUnitHost.InvalidateContextCache() => _translator.InvalidateContextCache();

    /// <summary>
    /// Translates one request: context (cached) → IOTLB → second-stage walk → fill, or a fault with
    /// its VT-d reason code. Thread-safe; concurrent with invalidations and table changes.
    /// </summary>
    /// <remarks>
    /// The common case runs in one straight line: translation on, no PASID, not an ATS request, a
    /// current fast context word (which exists only for contexts that translate), the address within
    /// the width, an IOTLB hit with the permissions asked for. Anything else takes the general path,
    /// which gives the same answer for these requests too.
    /// <para>After <see cref="Dispose"/> every translation answers <see cref="TranslationStatus.Disposed"/>.</para>
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // the translator's straight line, inlined into the caller's loop
    public TranslationResult Translate(in TranslationRequest request) => Translator.Translate(this, request);

    /// <summary>
    /// Translates <paramref name="requests"/> into <paramref name="results"/> (one each, same order);
    /// the same translations and faults as calling <see cref="Translate"/> for each request in order
    /// (only <see cref="TranslationResult.IotlbHit"/> differs when a page repeats inside one batch:
    /// both requests walked together).
    /// </summary>
    /// <remarks>
    /// Each chunk of 64 requests reads the context-cache stamp once, as if its requests all started
    /// together: an invalidation that returns while a batch runs may still be missed by the rest of
    /// that chunk, never by a later batch. After <see cref="Dispose"/> every result is
    /// <see cref="TranslationStatus.Disposed"/>.
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="results"/> is shorter than <paramref name="requests"/>.</exception>
    public void TranslateBatch(ReadOnlySpan<TranslationRequest> requests, Span<TranslationResult> results) => _translator.TranslateBatch(requests, results);

    /// <summary>Translations that missed the IOTLB and walked.</summary>
    public long IotlbMisses => _translator.IotlbMisses;

    /// <summary>Translations that missed the context cache and read the tables.</summary>
    public long ContextMisses => _translator.ContextMisses;

    /// <summary>Translations that faulted (recorded or not).</summary>
    public long Faults => _translator.Faults;

    /// <summary>Translations (and page requests) that faulted with <paramref name="reason"/>.</summary>
    public long FaultsWith(FaultReason reason) => _translator.FaultsWith(reason);

    /// <summary>The hot side: translation, the context cache and the IOTLB (a struct, used in place through this reference).</summary>
    internal ref Translator Translator => ref _translator;

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
    internal Iotlb Iotlb => _translator.Iotlb;

    /// <summary>Primary fault logging into the fault-recording registers, with counters and a callback for embedders.</summary>
    internal FaultRecorder FaultRecorder { get; }

    /// <summary>Host memory the unit's structures live in.</summary>
    public HostMemory Memory => _memory;

    /// <summary>The batch walker <see cref="TranslateBatch"/> walks misses with, and why it was chosen.</summary>
    internal BatchWalkerSelection BatchWalker { get; }

    /// <summary>The second-stage walker configuration of this unit (HAW, superpages, SC, DT).</summary>
    internal WalkerConfig WalkerConfig => _translator.WalkerConfig;

    /// <summary>Whether GCMD.TE is set (GSTS.TES).</summary>
    public bool TranslationEnabled => _translator.TranslationEnabled;

    /// <summary>The latched root-table address (GSTS.RTPS), or 0.</summary>
    public ulong RootTableAddress => _translator.RootTableAddress;

    /// <summary>Whether the latched root table is in scalable mode (RTADDR.TTM = 01).</summary>
    public bool ScalableMode => _translator.ScalableMode;

    /// <summary>Context-cache and PASID-cache invalidations so far (the cache's generation).</summary>
    public uint ContextCacheGeneration => _translator.ContextCacheGeneration;

    /// <summary>Whether <see cref="Dispose"/> has been called.</summary>
    public bool IsDisposed => _translator.IsDisposed;

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
            if (_translator.IsDisposed)
                return;
            _translator.MarkDisposed();   // the flag, then TE off
            _registerModel.Detach();
            _invalidationQueue.Detach();
        }
        FaultRecorder.Dispose();
        _translator.Dispose();
    }

    /// <summary>Throws <see cref="ObjectDisposedException"/> once the unit is disposed (control paths).</summary>
    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_translator.IsDisposed, this);
}
