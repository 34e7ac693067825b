namespace Engine.Iommu;

/// <summary>
/// The register side of a unit: what the hardware does when software writes a command register
/// (GCMD, CCMD, IOTLB_REG), the invalidation-completion and page-request interrupt conditions
/// (IECTL with ICS, PECTL with PRS), and the register lock every cold model of the unit runs under.
/// </summary>
/// <remarks>
/// SPEC.md §2.6–2.7; QEMU <c>vtd_handle_gcmd_write</c>, <c>vtd_handle_ccmd_write</c>,
/// <c>vtd_handle_iotlb_write</c>. Control path. The fault registers (FSTS, FECTL, FRCD) belong to
/// <see cref="FaultRecorder"/>; the queue registers (IQA/IQH/IQT, PQA/PQH/PQT) to
/// <see cref="InvalidationQueue"/> and <see cref="PageRequestQueue"/>.
/// </remarks>
internal sealed class DmarRegisterModel
{
    private const ulong RtaddrScalableMode = 1UL << 10;
    private const ulong RtaddrTtmMask = 3UL << 10;
    private const ulong RtaddrAddressMask = 0xFFFF_FFFF_FFFF_F000UL;   // RTA 63:12
    private const ulong IvaAddressMask = 0xFFFF_FFFF_FFFF_F000UL;      // ADDR 63:12
    private const ulong CcmdIcc = 1UL << 63;
    private const ulong IotlbIvt = 1UL << 63;
    private const int MaxAddressMask = 64 - Engine.Memory.HostMemory.FrameShift;

    private const GlobalCommand PersistentCommands = GlobalCommand.TranslationEnable | GlobalCommand.QueuedInvalidationEnable
        | GlobalCommand.InterruptRemappingEnable | GlobalCommand.CompatibilityFormatInterrupt;

    private readonly IDmarUnitHost _host;
    private readonly RegisterFile _registers;
    private readonly CapabilityRegister _cap;
    private readonly ExtendedCapabilityRegister _ecap;
    private readonly Iotlb _iotlb;

    /// <summary>Acts on <paramref name="registers"/>' writes from now until <see cref="Detach"/>.</summary>
    public DmarRegisterModel(IDmarUnitHost host, RegisterFile registers, CapabilityRegister cap, ExtendedCapabilityRegister ecap, Iotlb iotlb)
    {
        _host = host;
        _registers = registers;
        _cap = cap;
        _ecap = ecap;
        _iotlb = iotlb;
        _registers.Written += OnRegisterWritten;
    }

    /// <summary>
    /// The register lock: register side effects, queue processing and submission, page requests,
    /// checkpoints and disposal of the unit are serialized by it. Reentrant, because a handler raised
    /// under it may submit more work.
    /// </summary>
    public Lock Lock { get; } = new();

    /// <summary>Stops acting on register writes (the unit is being disposed; call under <see cref="Lock"/>).</summary>
    public void Detach() => _registers.Written -= OnRegisterWritten;

    /// <summary>Throws <see cref="ObjectDisposedException"/>, naming the unit, once it is disposed.</summary>
    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_host.IsDisposed, _host);

    /// <summary>A software register write with its side effects; throws once the unit is disposed.</summary>
    public RegisterAccessStatus Write(int offset, int size, ulong value)
    {
        ThrowIfDisposed();
        return _registers.Write(offset, size, value);
    }

    /// <summary>Programs RTADDR and issues SRTP, as the driver does (scalable or legacy root table).</summary>
    public void SetRootTable(ulong rootTableHpa, bool scalable)
    {
        ThrowIfDisposed();
        if ((rootTableHpa & ~RtaddrAddressMask) != 0)
            throw new ArgumentException($"The root table HPA 0x{rootTableHpa:x} must be 4 KiB aligned.", nameof(rootTableHpa));
        Write(RegisterOffsets.RootTableAddress, 8, rootTableHpa | (scalable ? RtaddrScalableMode : 0));
        IssueGlobalCommand(GlobalCommand.SetRootTablePointer);
    }

    /// <summary>Sets or clears GCMD.TE, keeping the other persistent commands as GSTS shows them.</summary>
    public void SetTranslationEnabled(bool enabled)
    {
        ThrowIfDisposed();
        GlobalCommand persistent = (GlobalCommand)_registers.Get(RegisterOffsets.GlobalStatus) & PersistentCommands;
        persistent = enabled ? persistent | GlobalCommand.TranslationEnable : persistent & ~GlobalCommand.TranslationEnable;
        Write(RegisterOffsets.GlobalCommand, 4, (uint)persistent);
    }

    /// <summary>Writes GCMD with the current persistent bits plus <paramref name="command"/> (how Linux issues one-shot commands).</summary>
    public void IssueGlobalCommand(GlobalCommand command)
    {
        ThrowIfDisposed();
        GlobalCommand persistent = (GlobalCommand)_registers.Get(RegisterOffsets.GlobalStatus) & PersistentCommands;
        Write(RegisterOffsets.GlobalCommand, 4, (uint)(persistent | command));
    }

    /// <summary>
    /// A new interrupt condition for the invalidation-completion or page-request event
    /// (<paramref name="controlOffset"/> IECTL or PECTL): IP is set, and with IM clear the message goes
    /// out now and IP clears again (QEMU <c>vtd_generate_completion_event</c>). Returns whether to raise it.
    /// </summary>
    /// <remarks>
    /// Setting IP before looking at IM, both under the register page's lock, pairs with the
    /// IM-cleared handler: whichever runs second sees the other's bit, so a racing unmask sends the
    /// event exactly once.
    /// </remarks>
    public bool RaiseInterruptCondition(int controlOffset)
    {
        ulong control = _registers.UpdateByHardware(controlOffset, 0, DmarRegisters.EventControlIp, out _);
        if ((control & DmarRegisters.EventControlIm) != 0)
            return false;
        _registers.UpdateByHardware(controlOffset, DmarRegisters.EventControlIp, 0, out _);
        return true;
    }

    /// <summary>
    /// One IOTLB invalidation (register or descriptor): granularity 1 global, 2 domain, 3 page
    /// (2^<paramref name="addressMask"/> pages from the page <paramref name="address"/>, bits 11:0 clear). Page-selective without
    /// CAP.PSI, or with AM above MAMV, is performed domain-selective; so is an AM above 52, which MAMV
    /// (6 bits) can allow but which covers more than the 64-bit address space. Returns the actual
    /// granularity (0 when the request is invalid).
    /// </summary>
    public ulong InvalidateIotlb(ulong granularity, ushort did, ulong address, int addressMask)
    {
        switch (granularity)
        {
            case 1:
                _iotlb.InvalidateAll();
                return 1;
            case 2:
                _iotlb.InvalidateDomain(did);
                return 2;
            case 3:
                if (!_cap.Psi || addressMask > _cap.Mamv || addressMask > MaxAddressMask)
                {
                    _iotlb.InvalidateDomain(did);
                    return 2;
                }
                _iotlb.InvalidatePages(did, address, addressMask);
                return 3;
            default:
                return 0;
        }
    }

    private void OnRegisterWritten(RegisterDeclaration register, ulong before, ulong after)
    {
        DmarInterruptKind? raise = null;
        lock (Lock)
        {
            if (_host.IsDisposed)
                return;   // a write that raced Dispose: the unit no longer acts on its registers
            switch (register.Offset)
            {
                case RegisterOffsets.GlobalCommand:
                    OnGlobalCommand((GlobalCommand)after);
                    break;
                case RegisterOffsets.ContextCommand:
                    OnContextCommand(after);
                    break;
                case RegisterOffsets.InvalidationEventControl or RegisterOffsets.PageRequestEventControl when Unmasked(before, after):
                    // Unmasked: a held interrupt goes out now.
                    if (TakePending(register.Offset))
                        raise = register.Offset == RegisterOffsets.InvalidationEventControl ? DmarInterruptKind.InvalidationComplete : DmarInterruptKind.PageRequest;
                    break;
                case RegisterOffsets.InvalidationCompletionStatus when Cleared(before, after, DmarRegisters.InvalidationCompletionIwc):
                    // Software serviced the completion: nothing is pending any more.
                    _ = TakePending(RegisterOffsets.InvalidationEventControl);
                    break;
                case RegisterOffsets.PageRequestStatus when Cleared(before, after, DmarRegisters.PageRequestStatusPpr):
                    _ = TakePending(RegisterOffsets.PageRequestEventControl);
                    break;
                default:
                    if (register.Offset == _ecap.IotlbRegisterOffset + 8)
                        OnIotlbCommand(after);
                    break;
            }
        }
        // Outside the lock, like the fault recorder's events: handlers may run on any thread.
        if (raise is { } kind)
            _host.RaiseInterrupt(kind);
    }

    private static bool Cleared(ulong before, ulong after, ulong bit) => (before & bit) != 0 && (after & bit) == 0;

    private static bool Unmasked(ulong before, ulong after) => Cleared(before, after, DmarRegisters.EventControlIm);

    // Clears IP; returns whether it was set (an interrupt was held).
    private bool TakePending(int controlOffset)
    {
        _registers.UpdateByHardware(controlOffset, DmarRegisters.EventControlIp, 0, out ulong control);
        return (control & DmarRegisters.EventControlIp) != 0;
    }

    private void OnGlobalCommand(GlobalCommand command)
    {
        var status = (GlobalCommand)_registers.Get(RegisterOffsets.GlobalStatus);
        if ((command & GlobalCommand.SetRootTablePointer) != 0)
        {
            ulong rtaddr = _registers.Get(RegisterOffsets.RootTableAddress);
            // TTM 01 selects scalable mode; 10/11 are reserved and fault as an invalid root-table address.
            ulong ttm = rtaddr & RtaddrTtmMask;
            _host.LatchRootTable(rtaddr & RtaddrAddressMask, scalable: ttm != 0, invalidTtm: ttm > RtaddrScalableMode);
            status |= GlobalCommand.SetRootTablePointer;
            // The model drops cached contexts on SRTP (ESRTPS behaviour); software flushes anyway.
            _host.InvalidateContextCache();
            if (_cap.Esrtps)
                _iotlb.InvalidateAll();
        }
        status = Reflect(status, command, GlobalCommand.TranslationEnable);
        status = Reflect(status, command, GlobalCommand.InterruptRemappingEnable);
        status = Reflect(status, command, GlobalCommand.CompatibilityFormatInterrupt);
        if ((command & GlobalCommand.SetInterruptRemapTablePointer) != 0)
            status |= GlobalCommand.SetInterruptRemapTablePointer;
        if ((command & GlobalCommand.SetFaultLog) != 0)
            status |= GlobalCommand.SetFaultLog;
        bool qi = (command & GlobalCommand.QueuedInvalidationEnable) != 0;
        if (qi && (status & GlobalCommand.QueuedInvalidationEnable) == 0)
        {
            if (_ecap.Qi)
                _registers.SetByHardware(RegisterOffsets.InvalidationQueueHead, 0);
            else
                qi = false;  // no QI support: the enable does not stick
        }
        status = qi ? status | GlobalCommand.QueuedInvalidationEnable : status & ~GlobalCommand.QueuedInvalidationEnable;
        // WBF completes at once: WBFS never stays set.
        _registers.SetByHardware(RegisterOffsets.GlobalStatus, (uint)(status & ~GlobalCommand.WriteBufferFlush));
        _registers.SetByHardware(RegisterOffsets.GlobalCommand, 0);
        _host.LatchTranslationEnabled((status & GlobalCommand.TranslationEnable) != 0);
    }

    private static GlobalCommand Reflect(GlobalCommand status, GlobalCommand command, GlobalCommand bit) =>
        (command & bit) != 0 ? status | bit : status & ~bit;

    // CCMD: ICC 63, CIRG 62:61 (requested granularity), CAIG 60:59 (actual granularity).
    private void OnContextCommand(ulong ccmd)
    {
        if ((ccmd & CcmdIcc) == 0)
            return;
        ulong caig = 0;
        if (RegisterField.Get(ccmd, 62, 61) != 0)
        {
            // Global, domain- or device-selective: the model invalidates everything (allowed: the
            // actual granularity reported is then global).
            _host.InvalidateContextCache();
            caig = 1;
        }
        _registers.SetByHardware(RegisterOffsets.ContextCommand, RegisterField.Set(ccmd & ~CcmdIcc, 60, 59, caig, "CAIG"));
    }

    // IOTLB_REG: IVT 63, IIRG 61:60 (requested granularity), IAIG 58:57 (actual), DID 47:32; the
    // address comes from IVA_REG just below it (ADDR 63:12, IH 6, AM 5:0).
    private void OnIotlbCommand(ulong command)
    {
        if ((command & IotlbIvt) == 0)
            return;
        int iro = _ecap.IotlbRegisterOffset;
        ulong iva = _registers.Get(iro);
        ulong iaig = InvalidateIotlb(RegisterField.Get(command, 61, 60), (ushort)RegisterField.Get(command, 47, 32),
            iva & IvaAddressMask, (int)RegisterField.Get(iva, 5, 0));
        _registers.SetByHardware(iro + 8, RegisterField.Set(command & ~IotlbIvt, 58, 57, iaig, "IAIG"));
    }
}
