namespace Engine.Iommu;

/// <summary>
/// Primary fault logging of one DMA-remapping unit: writes non-recoverable faults into the FRCD_REG
/// registers of its <see cref="RegisterFile"/> and keeps FSTS (PFO, PPF, FRI) and FECTL (IM, IP)
/// as the spec describes (SPEC.md §2.7; QEMU <c>vtd_report_dmar_fault</c>, <c>vtd_report_frcd_fault</c>,
/// <c>vtd_try_collapse_fault</c>, <c>vtd_update_fsts_ppf</c>, <c>vtd_generate_fault_event</c>).
/// </summary>
/// <remarks>
/// <para>
/// <see cref="Record"/>, in order: (1) a qualified fault under FPD = 1 is suppressed
/// (<see cref="FaultQualification"/>); (2) with FSTS.PFO set the fault is lost; (3) a fault that a pending
/// record absorbs is collapsed (<see cref="FaultCollapsing"/>); (4) if the register at the internal
/// fault-recording index still has F set, FSTS.PFO is set and the fault lost; (5) otherwise the record is
/// written there with F set, FSTS.PPF is set — and FSTS.FRI set to that index when PPF was clear before, since
/// FRI names "the register to which the first pending fault was recorded when PPF was set by hardware" — and the
/// index advances, wrapping at NFR; (6) if that made a new interrupt condition (no PFO, PPF, IQE, ICE or ITE set
/// before), FECTL.IP is set, and with FECTL.IM clear the fault-event interrupt is sent at once
/// (<see cref="FaultEvent"/>) and IP cleared again; with IM set IP stays set, pending.
/// </para>
/// <para>
/// Software side, through <see cref="RegisterFile.Write"/> (either a 64-bit write of FRCD_REG[i].hi or, as Linux
/// does, a 32-bit write of its upper half): writing 1 to F frees the register; PPF is then recomputed as the OR of
/// all F bits. Writing 1 to FSTS.PFO lets recording resume. Once no status field (PFO, PPF, IQE, ICE, ITE) is left
/// set, a pending FECTL.IP is cleared; clearing FECTL.IM while IP is set sends the held interrupt and clears IP.
/// </para>
/// <para>
/// Thread safety: <see cref="Record"/> may be called from any number of translating threads. Everything it changes
/// — the FRCD pair, FSTS, FECTL.IP, the internal index and the counters — is one state machine that must move as a
/// unit, so it runs under one lock. A lock is right here: this is the slow path (a faulting DMA has already been
/// refused; the fast translate path never comes here), the work under it is bounded (at most NFR ≤ 256 register
/// reads for collapsing), the hardware itself logs faults one at a time, and it makes the counters exact.
/// FSTS and FECTL are changed with <see cref="RegisterFile.UpdateByHardware"/>, so a software write-1-to-clear
/// racing with a recording is never undone. The <see cref="Faulted"/> and <see cref="FaultEvent"/> callbacks run
/// after the lock is released, on the recording (or register-writing) thread: handlers may run concurrently and
/// may write registers themselves.
/// </para>
/// </remarks>
internal sealed class FaultRecorder : IDisposable
{
    /// <summary>FSTS.PFO (bit 0): primary fault overflow; write 1 to clear.</summary>
    public const ulong FaultStatusPfo = 1UL << 0;

    /// <summary>FSTS.PPF (bit 1): primary pending fault, the OR of every FRCD_REG F bit; read-only.</summary>
    public const ulong FaultStatusPpf = 1UL << 1;

    /// <summary>FSTS.IQE (bit 4): invalidation queue error.</summary>
    public const ulong FaultStatusIqe = 1UL << 4;

    /// <summary>FSTS.ICE (bit 5): invalidation completion error.</summary>
    public const ulong FaultStatusIce = 1UL << 5;

    /// <summary>FSTS.ITE (bit 6): invalidation time-out error.</summary>
    public const ulong FaultStatusIte = 1UL << 6;

    /// <summary>FSTS.FRI (bits 15:8): index of the first pending fault record, valid while PPF is set.</summary>
    public const int FaultStatusFriShift = 8;

    /// <summary>FSTS.FRI, in place.</summary>
    public const ulong FaultStatusFriMask = 0xFFUL << FaultStatusFriShift;

    /// <summary>The FSTS fields that are interrupt conditions: while any is set, a new one raises no new fault event.</summary>
    public const ulong FaultStatusInterruptConditions = FaultStatusPfo | FaultStatusPpf | FaultStatusIqe | FaultStatusIce | FaultStatusIte;

    /// <summary>FECTL.IM (bit 31): interrupt mask.</summary>
    public const ulong FaultEventIm = 1UL << 31;

    /// <summary>FECTL.IP (bit 30): interrupt pending; read-only to software.</summary>
    public const ulong FaultEventIp = 1UL << 30;

    private readonly RegisterFile _registers;
    private readonly int _firstRecord;
    private readonly int _recordCount;
    private readonly FaultCollapsing _collapsing;
    private readonly Lock _lock = new();
    private int _next;
    private long _total, _recorded, _collapsed, _overflowed, _suppressed;
    private bool _disposed;

    /// <summary>Attaches fault logging to a unit's register page.</summary>
    /// <param name="registers">The unit's registers, from <see cref="DmarRegisters.CreateFile"/>.</param>
    /// <param name="cap">The unit's CAP: FRO places the NFR fault-recording registers.</param>
    /// <param name="collapsing">Which faults a pending record absorbs; the spec's and QEMU's same-source rule by default.</param>
    /// <exception cref="ArgumentException">The register page lacks FSTS, FECTL or one of the fault-recording registers CAP describes.</exception>
    public FaultRecorder(RegisterFile registers, CapabilityRegister cap, FaultCollapsing collapsing = FaultCollapsing.SameSource)
    {
        ArgumentNullException.ThrowIfNull(registers);
        if (!Enum.IsDefined(collapsing))
            throw new ArgumentOutOfRangeException(nameof(collapsing), collapsing, "Unknown collapsing rule.");
        _registers = registers;
        _firstRecord = cap.FaultRecordingOffset;
        _recordCount = cap.NumberOfFaultRegisters;
        _collapsing = collapsing;
        IReadOnlyDictionary<int, RegisterDeclaration> declared = registers.Declarations;
        if (!declared.ContainsKey(RegisterOffsets.FaultStatus) || !declared.ContainsKey(RegisterOffsets.FaultEventControl))
            throw new ArgumentException("The register page has no FSTS_REG or FECTL_REG.", nameof(registers));
        for (int i = 0; i < _recordCount; i++)
        {
            if (!declared.TryGetValue(LoOffset(i), out RegisterDeclaration? lo) || lo.Width != 8
                || !declared.TryGetValue(HiOffset(i), out RegisterDeclaration? hi) || hi.Width != 8)
                throw new ArgumentException($"FRCD_REG[{i}] is not declared at 0x{LoOffset(i):x} as CAP.FRO and CAP.NFR say.", nameof(registers));
        }
        _registers.Written += OnRegisterWritten;
    }

    /// <summary>Raised for every fault handed to <see cref="Record"/>, whatever became of it (after the registers are updated).</summary>
    public event Action<FaultReport>? Faulted;

    /// <summary>The fault-event interrupt (the MSI programmed in FEADDR/FEDATA): a new interrupt condition with FECTL.IM clear, or IM cleared while IP was pending.</summary>
    public event Action? FaultEvent;

    /// <summary>Number of fault-recording registers (CAP.NFR + 1).</summary>
    public int RecordCount => _recordCount;

    /// <summary>Which faults a pending record absorbs.</summary>
    public FaultCollapsing Collapsing => _collapsing;

    /// <summary>The hardware's internal index: the register the next fault will be written to.</summary>
    public int NextRecordIndex
    {
        get
        {
            lock (_lock)
                return _next;
        }
    }

    /// <summary>A consistent snapshot of the counters (taken under the recording lock, so <c>Total</c> is the sum of the rest).</summary>
    public FaultCounters Counters
    {
        get
        {
            lock (_lock)
                return new FaultCounters(_total, _recorded, _collapsed, _overflowed, _suppressed);
        }
    }

    /// <summary>Byte offset of FRCD_REG[<paramref name="index"/>].lo.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not below <see cref="RecordCount"/>.</exception>
    public int LoOffset(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _recordCount);
        return _firstRecord + FaultRecordingRegister.Size * index;
    }

    /// <summary>Byte offset of FRCD_REG[<paramref name="index"/>].hi (F is its bit 63).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not below <see cref="RecordCount"/>.</exception>
    public int HiOffset(int index) => LoOffset(index) + 8;

    /// <summary>FRCD_REG[<paramref name="index"/>] as it reads now.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="index"/> is not below <see cref="RecordCount"/>.</exception>
    public FaultRecordingRegister ReadRecord(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _recordCount);
        return new FaultRecordingRegister(_registers.Get(LoOffset(index)), _registers.Get(HiOffset(index)));
    }

    /// <summary>Logs one non-recoverable fault (see the type's remarks for the steps) and reports it through <see cref="Faulted"/>.</summary>
    /// <returns>What became of the fault.</returns>
    public FaultOutcome Record(in FaultRecord fault)
    {
        FaultOutcome outcome;
        int index = -1;
        bool interrupt = false;
        lock (_lock)
        {
            _total++;
            if (fault.FaultProcessingDisabled && FaultQualification.IsQualified(fault.Reason))
            {
                _suppressed++;
                outcome = FaultOutcome.Suppressed;
            }
            else
            {
                outcome = Log(fault, out index, out interrupt);
            }
        }
        Faulted?.Invoke(new FaultReport(fault, outcome, index));
        if (interrupt)
            FaultEvent?.Invoke();
        return outcome;
    }

    /// <summary>
    /// Sets FSTS error bits the unit's other logic detects (IQE, ICE, ITE) and, like a recorded fault, raises
    /// the fault event when no interrupt condition was set before (QEMU <c>vtd_handle_inv_queue_error</c>):
    /// at once with FECTL.IM clear, otherwise held in FECTL.IP.
    /// </summary>
    internal void ReportStatus(ulong bits)
    {
        bool interrupt = false;
        lock (_lock)
        {
            _registers.UpdateByHardware(RegisterOffsets.FaultStatus, 0, bits, out ulong before);
            if ((before & FaultStatusInterruptConditions) == 0)
                interrupt = RaiseInterruptCondition();
        }
        if (interrupt)
            FaultEvent?.Invoke();
    }

    /// <summary>Puts the internal fault-recording index back to 0, as a unit reset does (with <see cref="RegisterFile.Reset"/>); the counters are lifetime totals and stay.</summary>
    public void Reset()
    {
        lock (_lock)
            _next = 0;
    }

    /// <summary>Stops following the register page's software writes.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _registers.Written -= OnRegisterWritten;
    }

    // Steps 2–6 of the remarks; the caller holds _lock.
    private FaultOutcome Log(in FaultRecord fault, out int index, out bool interrupt)
    {
        index = -1;
        interrupt = false;
        // PFO and PPF only change under _lock (PPF is read-only to software; software can only clear PFO, and a
        // clear racing with this read just loses this one fault, as on hardware).
        ulong status = _registers.Get(RegisterOffsets.FaultStatus);
        if ((status & FaultStatusPfo) != 0)
        {
            _overflowed++;
            return FaultOutcome.Overflowed;
        }

        FaultRecordingRegister record = FaultRecordingRegister.Encode(fault);
        if ((status & FaultStatusPpf) != 0 && TryCollapse(record, out index))
        {
            _collapsed++;
            return FaultOutcome.Collapsed;
        }

        int slot = _next;
        if ((_registers.Get(HiOffset(slot)) & FaultRecordingRegister.FaultBit) != 0)
        {
            _registers.UpdateByHardware(RegisterOffsets.FaultStatus, 0, FaultStatusPfo, out _);
            _overflowed++;
            index = -1;
            return FaultOutcome.Overflowed;
        }

        // The details first, then the hi qword that carries F: a reader that sees F sees the whole record.
        _registers.SetByHardware(LoOffset(slot), record.Lo);
        _registers.SetByHardware(HiOffset(slot), record.Hi);
        _next = slot + 1 == _recordCount ? 0 : slot + 1;
        _recorded++;
        index = slot;

        // PPF set; FRI only when this fault is the first pending one (PPF was clear).
        bool first = (status & FaultStatusPpf) == 0;
        _registers.UpdateByHardware(RegisterOffsets.FaultStatus,
            clear: first ? FaultStatusFriMask : 0,
            set: FaultStatusPpf | (first ? (ulong)slot << FaultStatusFriShift : 0),
            out ulong before);
        if ((before & FaultStatusInterruptConditions) == 0)
            interrupt = RaiseInterruptCondition();
        return FaultOutcome.Recorded;
    }

    // A pending record that absorbs this fault; F bits only fall outside _lock, so a stale "pending" here is
    // a fault collapsed into a record software was just clearing — the same race hardware has.
    private bool TryCollapse(in FaultRecordingRegister record, out int index)
    {
        index = -1;
        if (_collapsing == FaultCollapsing.None)
            return false;
        for (int i = 0; i < _recordCount; i++)
        {
            ulong hi = _registers.Get(HiOffset(i));
            if ((hi & FaultRecordingRegister.FaultBit) == 0)
                continue;
            bool absorbs = _collapsing == FaultCollapsing.SameSource
                ? (hi & FaultRecordingRegister.SourceIdMask) == (record.Hi & FaultRecordingRegister.SourceIdMask)
                : hi == record.Hi && _registers.Get(LoOffset(i)) == record.Lo;
            if (absorbs)
            {
                index = i;
                return true;
            }
        }
        return false;
    }

    // A new interrupt condition: IP is set; with IM clear the message goes out now and IP clears again
    // (QEMU vtd_generate_fault_event). Returns whether to raise FaultEvent. Caller holds _lock.
    private bool RaiseInterruptCondition()
    {
        ulong control = _registers.UpdateByHardware(RegisterOffsets.FaultEventControl, 0, FaultEventIp, out _);
        if ((control & FaultEventIm) != 0)
            return false;
        _registers.UpdateByHardware(RegisterOffsets.FaultEventControl, FaultEventIp, 0, out _);
        return true;
    }

    private void OnRegisterWritten(RegisterDeclaration register, ulong before, ulong after)
    {
        int offset = register.Offset;
        bool recordHi = offset >= _firstRecord && offset < _firstRecord + FaultRecordingRegister.Size * _recordCount
            && (offset - _firstRecord) % FaultRecordingRegister.Size == 8;
        bool interrupt = false;
        if (recordHi || offset == RegisterOffsets.FaultStatus)
        {
            lock (_lock)
                ServiceStatus();
        }
        else if (offset == RegisterOffsets.FaultEventControl && (before & FaultEventIm) != 0 && (after & FaultEventIm) == 0)
        {
            // IM cleared: a held interrupt goes out now.
            lock (_lock)
            {
                _registers.UpdateByHardware(RegisterOffsets.FaultEventControl, FaultEventIp, 0, out ulong control);
                interrupt = (control & FaultEventIp) != 0;
            }
        }
        if (interrupt)
            FaultEvent?.Invoke();
    }

    // Software cleared F bits or FSTS fields: PPF becomes the OR of the F bits again (it can only fall here —
    // every F that is set was set by Log, which set PPF with it), and once no interrupt condition is left a
    // pending IP is cleared. FRI is left alone: it is undefined while PPF is clear. Caller holds _lock.
    private void ServiceStatus()
    {
        bool pending = false;
        for (int i = 0; i < _recordCount && !pending; i++)
            pending = (_registers.Get(HiOffset(i)) & FaultRecordingRegister.FaultBit) != 0;
        ulong status = _registers.UpdateByHardware(RegisterOffsets.FaultStatus, pending ? 0 : FaultStatusPpf, 0, out _);
        if ((status & FaultStatusInterruptConditions) == 0)
            _registers.UpdateByHardware(RegisterOffsets.FaultEventControl, FaultEventIp, 0, out _);
    }

    /// <summary>Checkpoint: the next recording slot and the counters (the records themselves are registers).</summary>
    internal void SaveState(Memory.CheckpointWriter w)
    {
        lock (_lock)
        {
            w.I32(_next);
            w.I64(_total);
            w.I64(_recorded);
            w.I64(_collapsed);
            w.I64(_overflowed);
            w.I64(_suppressed);
        }
    }

    /// <summary>Checkpoint: takes what <see cref="SaveState"/> wrote.</summary>
    internal void RestoreState(Memory.CheckpointReader r)
    {
        lock (_lock)
        {
            int next = r.I32("the next fault-recording slot");
            if (next < 0 || next >= Math.Max(1, _recordCount))
                throw r.Fail($"a fault-recording slot of 0..{_recordCount - 1}, found {next}", 4);
            _next = next;
            _total = r.I64("faults seen");
            _recorded = r.I64("faults recorded");
            _collapsed = r.I64("faults collapsed");
            _overflowed = r.I64("faults overflowed");
            _suppressed = r.I64("faults suppressed");
        }
    }
}
