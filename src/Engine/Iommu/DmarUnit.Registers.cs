namespace Engine.Iommu;

// Register side effects: what the hardware does when software writes a command register.
public sealed partial class DmarUnit
{
    private const ulong RtaddrScalableMode = 1UL << 10;
    private const ulong RtaddrTtmMask = 3UL << 10;

    // RTADDR, IQA and PQA all hold a 4 KiB-aligned table base in bits 63:12; the low bits are
    // mode and size fields, not address.
    private const ulong RegisterBaseMask = 0xFFFF_FFFF_FFFF_F000UL;
    private readonly Lock _registerLock = new();

    /// <summary>A software register read (4 or 8 bytes); bad offsets and sizes are answered, not thrown.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public RegisterAccessStatus ReadRegister(int offset, int size, out ulong value)
    {
        ThrowIfDisposed();
        return Registers.Read(offset, size, out value);
    }

    /// <summary>A software register write (4 or 8 bytes) with its hardware side effects; bad offsets and sizes are answered, not thrown.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public RegisterAccessStatus WriteRegister(int offset, int size, ulong value)
    {
        ThrowIfDisposed();
        return Registers.Write(offset, size, value);
    }

    /// <summary>Programs RTADDR and issues SRTP, as the driver does (scalable or legacy root table).</summary>
    public void SetRootTable(ulong rootTableHpa, bool scalable)
    {
        ThrowIfDisposed();
        if ((rootTableHpa & 0xFFF) != 0)
            throw new ArgumentException($"The root table HPA 0x{rootTableHpa:x} must be 4 KiB aligned.", nameof(rootTableHpa));
        WriteRegister(RegisterOffsets.RootTableAddress, 8, rootTableHpa | (scalable ? RtaddrScalableMode : 0));
        IssueGlobalCommand(GlobalCommand.SetRootTablePointer);
    }

    /// <summary>Sets or clears GCMD.TE.</summary>
    public void SetTranslationEnabled(bool enabled)
    {
        ThrowIfDisposed();
        GlobalCommand status = (GlobalCommand)Registers.Get(RegisterOffsets.GlobalStatus);
        GlobalCommand persistent = status & (GlobalCommand.TranslationEnable | GlobalCommand.QueuedInvalidationEnable
            | GlobalCommand.InterruptRemappingEnable | GlobalCommand.CompatibilityFormatInterrupt);
        persistent = enabled ? persistent | GlobalCommand.TranslationEnable : persistent & ~GlobalCommand.TranslationEnable;
        WriteRegister(RegisterOffsets.GlobalCommand, 4, (uint)persistent);
    }

    /// <summary>Writes GCMD with the current persistent bits plus <paramref name="command"/> (how Linux issues one-shot commands).</summary>
    internal void IssueGlobalCommand(GlobalCommand command)
    {
        ThrowIfDisposed();
        GlobalCommand status = (GlobalCommand)Registers.Get(RegisterOffsets.GlobalStatus);
        GlobalCommand persistent = status & (GlobalCommand.TranslationEnable | GlobalCommand.QueuedInvalidationEnable
            | GlobalCommand.InterruptRemappingEnable | GlobalCommand.CompatibilityFormatInterrupt);
        WriteRegister(RegisterOffsets.GlobalCommand, 4, (uint)(persistent | command));
    }

    private const ulong EventIm = 1UL << 31, EventIp = 1UL << 30;

    // A new interrupt condition for the invalidation-completion or page-request event (IECTL / PECTL:
    // IM 31, IP 30): IP is set, and with IM clear the message goes out now and IP clears again
    // (QEMU vtd_generate_completion_event). Setting IP before looking at IM, both under the page's
    // lock, pairs with the IM-cleared handler below: whichever runs second sees the other's bit, so
    // a racing unmask sends the event exactly once. Returns whether to raise it.
    private bool RaiseInterruptCondition(int controlOffset)
    {
        ulong control = Registers.UpdateByHardware(controlOffset, 0, EventIp, out _);
        if ((control & EventIm) != 0)
            return false;
        Registers.UpdateByHardware(controlOffset, EventIp, 0, out _);
        return true;
    }

    private void OnRegisterWritten(RegisterDeclaration register, ulong before, ulong after)
    {
        DmarInterruptKind? raise = null;
        lock (_registerLock)
        {
            if (_disposed)
                return;   // a write that raced Dispose: the unit no longer acts on its registers
            switch (register.Offset)
            {
                case RegisterOffsets.GlobalCommand:
                    OnGlobalCommand((GlobalCommand)after);
                    break;
                case RegisterOffsets.ContextCommand:
                    OnContextCommand(after);
                    break;
                case RegisterOffsets.InvalidationQueueTail:
                    ProcessInvalidationQueue();
                    break;
                case RegisterOffsets.FaultStatus when (before & FaultStatusIqe) != 0 && (after & FaultStatusIqe) == 0:
                    // Software fixed the bad descriptor and cleared IQE: processing resumes at IQH.
                    ProcessInvalidationQueue();
                    break;
                case RegisterOffsets.InvalidationEventControl when (before & EventIm) != 0 && (after & EventIm) == 0:
                    // Unmasked: a held completion interrupt goes out now.
                    if (TakePending(RegisterOffsets.InvalidationEventControl))
                        raise = DmarInterruptKind.InvalidationComplete;
                    break;
                case RegisterOffsets.InvalidationCompletionStatus when (before & IcsIwc) != 0 && (after & IcsIwc) == 0:
                    // Software serviced the completion: nothing is pending any more.
                    Registers.UpdateByHardware(RegisterOffsets.InvalidationEventControl, EventIp, 0, out _);
                    break;
                case RegisterOffsets.PageRequestEventControl when (before & EventIm) != 0 && (after & EventIm) == 0:
                    if (TakePending(RegisterOffsets.PageRequestEventControl))
                        raise = DmarInterruptKind.PageRequest;
                    break;
                case RegisterOffsets.PageRequestStatus when (before & PrsPpr) != 0 && (after & PrsPpr) == 0:
                    Registers.UpdateByHardware(RegisterOffsets.PageRequestEventControl, EventIp, 0, out _);
                    break;
                default:
                    if (register.Offset == Ecap.IotlbRegisterOffset + 8)
                        OnIotlbCommand(after);
                    break;
            }
        }
        // Outside the lock, like the fault recorder's events: handlers may run on any thread.
        if (raise is { } kind)
            RaiseInterrupt(kind);
    }

    // The legacy event of the kind first, then Interrupt with the unit as the sender.
    private void RaiseInterrupt(DmarInterruptKind kind)
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

    // Clears IP; returns whether it was set (an interrupt was held).
    private bool TakePending(int controlOffset)
    {
        Registers.UpdateByHardware(controlOffset, EventIp, 0, out ulong control);
        return (control & EventIp) != 0;
    }

    private void OnGlobalCommand(GlobalCommand command)
    {
        var status = (GlobalCommand)Registers.Get(RegisterOffsets.GlobalStatus);
        if ((command & GlobalCommand.SetRootTablePointer) != 0)
        {
            ulong rtaddr = Registers.Get(RegisterOffsets.RootTableAddress);
            Volatile.Write(ref _rootTable, rtaddr & RegisterBaseMask);
            // TTM 01 selects scalable mode; 10/11 are reserved and fault as an invalid root-table address.
            ulong ttm = rtaddr & RtaddrTtmMask;
            Volatile.Write(ref _scalableRoot, ttm != 0);
            _invalidTtm = ttm > RtaddrScalableMode;
            status |= GlobalCommand.SetRootTablePointer;
            // The model drops cached contexts on SRTP (ESRTPS behaviour); software flushes anyway.
            _contextCache.InvalidateAll();
            if (Cap.Esrtps)
                Iotlb.InvalidateAll();
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
            if (Ecap.Qi)
                Registers.SetByHardware(RegisterOffsets.InvalidationQueueHead, 0);
            else
                qi = false;  // no QI support: the enable does not stick
        }
        status = qi ? status | GlobalCommand.QueuedInvalidationEnable : status & ~GlobalCommand.QueuedInvalidationEnable;
        // WBF completes at once: WBFS never stays set.
        Registers.SetByHardware(RegisterOffsets.GlobalStatus, (uint)(status & ~GlobalCommand.WriteBufferFlush));
        Registers.SetByHardware(RegisterOffsets.GlobalCommand, 0);
        Volatile.Write(ref _translationEnabled, (status & GlobalCommand.TranslationEnable) != 0);
    }

    private static GlobalCommand Reflect(GlobalCommand status, GlobalCommand command, GlobalCommand bit) =>
        (command & bit) != 0 ? status | bit : status & ~bit;

    private void OnContextCommand(ulong ccmd)
    {
        const ulong Icc = 1UL << 63;
        if ((ccmd & Icc) == 0)
            return;
        ulong cirg = (ccmd >> 61) & 3;
        ulong caig = 0;
        if (cirg != 0)
        {
            // Global, domain- or device-selective: the model invalidates everything (allowed: the
            // actual granularity reported is then global).
            _contextCache.InvalidateAll();
            caig = 1;
        }
        Registers.SetByHardware(RegisterOffsets.ContextCommand, (ccmd & ~Icc & ~(3UL << 59)) | (caig << 59));
    }

    private void OnIotlbCommand(ulong command)
    {
        const ulong Ivt = 1UL << 63;
        if ((command & Ivt) == 0)
            return;
        int iro = Ecap.IotlbRegisterOffset;
        ulong iirg = (command >> 60) & 3;
        ushort did = (ushort)(command >> 32);
        ulong iaig = InvalidateIotlb(iirg, did, Registers.Get(iro));
        Registers.SetByHardware(iro + 8, (command & ~Ivt & ~(3UL << 57)) | (iaig << 57));
    }

    /// <summary>
    /// One IOTLB invalidation (register or descriptor): granularity 1 global, 2 domain, 3 page (IVA
    /// format: address 63:12, IH 6, AM 5:0). Page-selective without CAP.PSI, or with AM above MAMV,
    /// is performed domain-selective; so is an AM above 52, which MAMV (6 bits) can allow but which
    /// covers more than the 64-bit address space. Returns the actual granularity (0 when the request is invalid).
    /// </summary>
    private const int MaxAddressMask = 64 - Engine.Memory.HostMemory.FrameShift;

    private ulong InvalidateIotlb(ulong granularity, ushort did, ulong iva)
    {
        switch (granularity)
        {
            case 1:
                Iotlb.InvalidateAll();
                return 1;
            case 2:
                Iotlb.InvalidateDomain(did);
                return 2;
            case 3:
                int am = (int)(iva & 0x3F);
                if (!Cap.Psi || am > Cap.Mamv || am > MaxAddressMask)
                {
                    Iotlb.InvalidateDomain(did);
                    return 2;
                }
                Iotlb.InvalidatePages(did, iva & ~0xFFFUL, am);
                return 3;
            default:
                return 0;
        }
    }
}
