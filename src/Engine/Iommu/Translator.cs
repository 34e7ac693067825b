using Engine.Memory;
using Engine.Paging;

namespace Engine.Iommu;

/// <summary>
/// The hot side of a <see cref="DmarUnit"/>: translation of one request and of a batch, the context
/// cache with its fast words, the IOTLB, and the latched state they read (root table, TE, disposal).
/// No lock, no allocation, no exception on its paths: a fault is a value.
/// </summary>
/// <remarks>
/// <para>
/// This file: construction, the fields, the latches the cold models set through the unit, disposal.
/// <c>Translator.Translate.cs</c>: the straight-line hit, the general path, walk and fill, faults.
/// <c>Translator.Batch.cs</c>: <see cref="TranslateBatch"/> (misses grouped and walked together).
/// <c>Translator.BatchHits.cs</c>: the 8-at-a-time AVX-512 hit pass. <c>Translator.Context.cs</c>:
/// root/context/PASID resolution behind the context cache. <c>Translator.Checkpoint.cs</c>: its part of
/// the unit's checkpoint.
/// </para>
/// <para>
/// A struct, held in one field of its unit (<c>DmarUnit._translator</c>, never copied: its latches are
/// written in place), so that <see cref="DmarUnit.Translate"/> reads the hit's fields straight off the
/// unit (see <see cref="Translate"/>). As a class, each translation loaded the translator's reference
/// from the unit first: the JIT cannot hoist that load out of a caller's loop that may call the miss
/// path, and the iotlb-hit loop grew by that load and the spills it caused (tier-1 listing of
/// <c>IotlbHitWorkload.RunPass</c>).
/// </para>
/// <para>
/// The IOTLB and the context cache live in pinned managed memory that is freed only once nothing
/// references them (see <c>PinnedWords</c>). Their owners are reachable through the unit, so every
/// path keeps the unit reachable past its last read of them: <c>GC.KeepAlive(_owner)</c>, or on the
/// inlined hit <c>GC.KeepAlive(owner)</c>, the unit handed in by <see cref="DmarUnit.Translate"/>
/// (already in a register of the caller, where <c>_owner</c> would be a load).
/// </para>
/// </remarks>
internal unsafe partial struct Translator
{
    private readonly DmarUnit _owner;   // the unit this struct lives in: kept alive past every read of the caches
    private readonly HostMemory _memory;
    private readonly WalkerConfig _walker;
    private readonly ContextCache _contextCache;
    private readonly ulong* _fastWords;   // the context cache's fast words, read directly by the hit path
    private readonly ulong* _rootWords;   // and its root words, read by the miss paths
    private readonly bool _useBatchVector;
    private readonly BatchWalkerKind _batchWalker;
    private readonly int _superpageLevel;
    private readonly int _mgaw;
    private readonly bool _legacyStylePermissions;
    private readonly ulong _snoopBit;   // SlPte.SnoopBit when ECAP.SC, else 0: a leaf's SNP counts only then
    private ulong _rootTable;
    private bool _scalableRoot;
    private bool _translationEnabled;
    private bool _invalidTtm;
    private bool _disposed;
    private readonly ThreadCounters _counters;   // see the counters in Translator.Translate.cs
    private readonly long* _missCells;           // _counters' miss counter, slot 0's cell (the miss paths add through it)
    private readonly EpochManager _epochs;       // _memory's, kept here: one load fewer a miss

    // Faults by VT-d reason code, counted on the fault path (never on a hit or a miss that
    // translates), which takes the fault recorder's lock right after: an interlocked add is no loss there.
    private readonly long[] _faultsByReason = new long[256];

    /// <summary>A translator over <paramref name="memory"/> with its own IOTLB and context cache, as <paramref name="options"/> size them.</summary>
    /// <param name="owner">The unit whose field this translator will be.</param>
    /// <param name="memory">Host memory the tables live in.</param>
    /// <param name="options">The unit's options (validated by the unit).</param>
    /// <param name="batchWalker">The batch walker, resolved by the unit.</param>
    /// <param name="superpageLevel">The largest superpage level the unit supports (<see cref="DriverView.SuperpageLevel"/>).</param>
    /// <param name="faultRecorder">The unit's fault recorder, which every fault is reported to.</param>
    internal Translator(DmarUnit owner, HostMemory memory, DmarUnitOptions options, BatchWalkerKind batchWalker, int superpageLevel, FaultRecorder faultRecorder)
    {
        _owner = owner;
        _memory = memory;
        _epochs = memory.Epochs;
        _counters = new ThreadCounters();
        _missCells = _counters.CellOfSlotZero(MissCounter);
        Cap = options.Cap;
        Ecap = options.Ecap;
        _batchWalker = batchWalker;
        _superpageLevel = superpageLevel;
        _mgaw = Cap.Mgaw;
        _legacyStylePermissions = options.ScalablePermissionFaults == ScalablePermissionFaultStyle.ByRequest;
        _snoopBit = Ecap.SnoopControl ? SlPte.SnoopBit : 0;
        _walker = WalkerConfig.SecondStage(memory.HostAddressWidth, _superpageLevel, Ecap.SnoopControl, Ecap.DeviceTlb, executeRequests: false);
        Iotlb = new Iotlb(options.IotlbSets, options.UseSimd);
        _contextCache = new ContextCache(options.ContextCacheSlots);
        _fastWords = _contextCache.FastWords;
        _rootWords = _contextCache.RootWords;
        _useBatchVector = options.UseSimd && BatchHitsUseVector512;
        FaultRecorder = faultRecorder;
    }

    /// <summary>The capability register.</summary>
    internal CapabilityRegister Cap { get; }

    /// <summary>The extended capability register.</summary>
    internal ExtendedCapabilityRegister Ecap { get; }

    /// <summary>The IOTLB.</summary>
    internal Iotlb Iotlb { get; }

    /// <summary>Where faults are recorded (the unit's, shared with the invalidation queue).</summary>
    internal FaultRecorder FaultRecorder { get; }

    /// <summary>The second-stage walker configuration (HAW, superpages, SC, DT).</summary>
    internal WalkerConfig WalkerConfig => _walker;

    /// <summary>Whether GCMD.TE is set (GSTS.TES).</summary>
    internal bool TranslationEnabled => Volatile.Read(ref _translationEnabled);

    /// <summary>The latched root-table address (GSTS.RTPS), or 0.</summary>
    internal ulong RootTableAddress => Volatile.Read(ref _rootTable);

    /// <summary>Whether the latched root table is in scalable mode (RTADDR.TTM = 01).</summary>
    internal bool ScalableMode => Volatile.Read(ref _scalableRoot);

    /// <summary>Whether the latched RTADDR.TTM is reserved (10 or 11).</summary>
    internal bool InvalidTtm => Volatile.Read(ref _invalidTtm);

    /// <summary>Context-cache and PASID-cache invalidations so far (the cache's generation).</summary>
    internal uint ContextCacheGeneration => _contextCache.Generation;

    /// <summary>Whether the unit has been taken out of service (<see cref="MarkDisposed"/>).</summary>
    internal bool IsDisposed => Volatile.Read(ref _disposed);

    // SRTP's latches, written under the unit's register lock and read by translations without one.
    internal void LatchRootTable(ulong rootTable, bool scalable, bool invalidTtm)
    {
        Volatile.Write(ref _rootTable, rootTable);
        Volatile.Write(ref _scalableRoot, scalable);
        _invalidTtm = invalidTtm;
    }

    internal void LatchTranslationEnabled(bool enabled) => Volatile.Write(ref _translationEnabled, enabled);

    /// <summary>Drops every cached context and PASID entry (one generation step).</summary>
    internal void InvalidateContextCache() => _contextCache.InvalidateAll();

    /// <summary>
    /// Takes the translator out of service: every translation that starts afterwards answers
    /// <see cref="TranslationStatus.Disposed"/>. Called once, under the unit's register lock.
    /// </summary>
    internal void MarkDisposed()
    {
        // The flag before TE: a translation that sees TE off and then reads the flag sees it set.
        Volatile.Write(ref _disposed, true);
        Volatile.Write(ref _translationEnabled, false);
    }

    /// <summary>Releases the IOTLB and the context cache (their memory stays until the translator is unreachable).</summary>
    internal void Dispose()
    {
        Iotlb.Dispose();
        _contextCache.Dispose();
    }
}
