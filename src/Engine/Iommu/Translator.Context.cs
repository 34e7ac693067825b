using Engine.Paging;

namespace Engine.Iommu;

// Resolution of (source id, PASID) through the root, context, PASID-directory and PASID tables,
// written as the spec's numbered steps; each failing check returns the spec's reason code.
internal unsafe partial struct Translator
{
    /// <summary>The context-cache key of a request without PASID (one past the 20-bit PASID range).</summary>
    private const uint NoPasidKey = ContextCache.NoPasidKey;

    private ulong ReadQword(ulong hpa, out bool ok)
    {
        byte* p = _memory.TryGetPointer(hpa, 8);
        ok = p != null;
        return ok ? Volatile.Read(ref *(ulong*)p) : 0;
    }

    /// <summary>Resolves the request's context inside an epoch-protected region of its own.</summary>
    internal FaultReason ResolveProtected(in TranslationRequest request, out ResolvedContext context, out bool fpd)
    {
        _memory.Epochs.Protect();
        try
        {
            return Resolve(request, out context, out fpd);
        }
        finally
        {
            _memory.Epochs.Unprotect();
        }
    }

    /// <summary>Resolves the request's context; the caller is inside an epoch-protected region.</summary>
    private FaultReason Resolve(in TranslationRequest request, out ResolvedContext context, out bool fpd)
    {
        context = default;
        fpd = false;
        ulong root = Volatile.Read(ref _rootTable);
        if (!Volatile.Read(ref _scalableRoot))
            return ResolveLegacy(request, root, out context, out fpd);
        if (!Ecap.ScalableMode || Volatile.Read(ref _invalidTtm))
            return FaultReason.SmRootTableAddressInvalid;
        return ResolveScalable(request, root, out context, out fpd);
    }

    private FaultReason ResolveLegacy(in TranslationRequest request, ulong root, out ResolvedContext context, out bool fpd)
    {
        context = default;
        fpd = false;
        int haw = _memory.HostAddressWidth;

        // L1: a request with PASID cannot be served by legacy-mode tables.
        if (request.HasPasid)
            return FaultReason.SmTtmLegacyWithPasid;

        // L2: the root entry for the bus.
        ulong rootLo = ReadQword(root + (ulong)request.Bus * RootEntry.Size, out bool ok);
        ulong rootHi = ReadQword(root + (ulong)request.Bus * RootEntry.Size + 8, out bool okHi);
        if (!ok || !okHi)
            return FaultReason.RootTableInvalid;
        var rootEntry = new RootEntry(rootLo, rootHi);
        if (!rootEntry.Present)
            return FaultReason.RootEntryNotPresent;
        if ((rootEntry.Lo & RootEntry.ReservedMask(haw)) != 0 || rootEntry.Hi != 0)
            return FaultReason.RootEntryReserved;

        // L3: the context entry for the device/function.
        ulong entryHpa = rootEntry.ContextTablePointer + (ulong)request.DevFn * ContextEntry.Size;
        var entry = new ContextEntry(ReadQword(entryHpa, out ok), ReadQword(entryHpa + 8, out okHi));
        if (!ok || !okHi)
            return FaultReason.ContextTableInvalid;
        if (!entry.Present)
            return FaultReason.ContextEntryNotPresent;
        fpd = entry.Fpd;
        if ((entry.Lo & ContextEntry.ReservedMaskLo(haw)) != 0 || (entry.Hi & ContextEntry.ReservedMaskHi) != 0)
            return FaultReason.ContextEntryReserved;

        // L4: translation type and address width.
        ContextFlags flags = entry.Fpd ? ContextFlags.FaultProcessingDisabled : ContextFlags.None;
        switch (entry.TranslationType)
        {
            case ContextEntry.TranslationTypeUntranslated:
            case ContextEntry.TranslationTypeAll:
                if (entry.TranslationType == ContextEntry.TranslationTypeAll)
                    flags |= ContextFlags.DeviceTlb;
                break;
            case ContextEntry.TranslationTypePassThrough when Ecap.PassThrough:
                context = new ResolvedContext(0, entry.Did, 0, 64, flags | ContextFlags.PassThrough);
                return FaultReason.None;
            default:
                return FaultReason.ContextEntryInvalid;
        }
        if (!AgawSupported(entry.Aw))
            return FaultReason.ContextEntryInvalid;
        context = new ResolvedContext(entry.SlptPtr, entry.Did, (byte)AgawMath.AgawToLevel(entry.Aw), WidthOf(entry.Aw), flags);
        return FaultReason.None;
    }

    private FaultReason ResolveScalable(in TranslationRequest request, ulong root, out ResolvedContext context, out bool fpd)
    {
        context = default;
        fpd = false;
        int haw = _memory.HostAddressWidth;

        // S1: the scalable root entry; its lower half serves devfn 0x00-0x7f, its upper half 0x80-0xff.
        ulong half = ReadQword(root + (ulong)request.Bus * RootEntry.Size + (ulong)RootEntry.ScalableHalfOffset(request.DevFn), out bool ok);
        if (!ok)
            return FaultReason.SmRootEntryAccess;
        if (!RootEntry.IsPresent(half))
            return FaultReason.SmRootEntryNotPresent;
        if ((half & RootEntry.ReservedMask(haw)) != 0)
            return FaultReason.SmRootEntryReserved;

        // S2: the scalable context entry, at devfn & 0x7f in the half's table.
        ulong entryHpa = RootEntry.ContextTablePointerOf(half) + (ulong)ScalableContextEntry.IndexOf(request.DevFn) * ScalableContextEntry.Size;
        ulong q0 = ReadQword(entryHpa, out ok), q1 = ReadQword(entryHpa + 8, out bool ok1);
        ulong q2 = ReadQword(entryHpa + 16, out bool ok2), q3 = ReadQword(entryHpa + 24, out bool ok3);
        if (!(ok && ok1 && ok2 && ok3))
            return FaultReason.SmContextEntryAccess;
        var ctx = new ScalableContextEntry(q0, q1, q2, q3);
        if (!ctx.Present)
            return FaultReason.SmContextEntryNotPresent;
        fpd = ctx.Fpd;
        if ((q0 & ScalableContextEntry.ReservedMaskQw0(haw)) != 0 || (q1 & ScalableContextEntry.ReservedMaskQw1) != 0 || q2 != 0 || q3 != 0)
            return FaultReason.SmContextEntryReserved;

        // S3: the PASID: the request's (if PASIDs are enabled) or RID_PASID.
        uint pasid;
        if (request.HasPasid)
        {
            if (!ctx.PasidEnable)
                return FaultReason.SmPasidEnableClear;
            pasid = request.Pasid & FaultRecord.MaxPasid;
        }
        else
        {
            pasid = ctx.RidPasid;
        }
        if (PasidDirectoryEntry.IndexOf(pasid) >= ctx.PasidDirectoryEntries)
            return FaultReason.SmPasidTooLarge;

        // S4: the PASID-directory entry.
        var dir = new PasidDirectoryEntry(ReadQword(ctx.PasidDirectoryPointer + (ulong)PasidDirectoryEntry.IndexOf(pasid) * PasidDirectoryEntry.Size, out ok));
        if (!ok)
            return FaultReason.SmPasidDirectoryAccess;
        if (!dir.Present)
            return FaultReason.SmPasidDirectoryNotPresent;
        fpd |= dir.Fpd;
        if ((dir.Value & PasidDirectoryEntry.ReservedMask(haw)) != 0)
            return FaultReason.SmPasidDirectoryReserved;

        // S5: the PASID-table entry.
        ulong peHpa = dir.PasidTablePointer + (ulong)PasidEntry.IndexOf(pasid) * PasidEntry.Size;
        var pe = new PasidEntry(ReadQword(peHpa, out ok), ReadQword(peHpa + 8, out ok1), ReadQword(peHpa + 16, out ok2));
        if (!(ok && ok1 && ok2))
            return FaultReason.SmPasidTableAccess;
        if (!pe.Present)
            return FaultReason.SmPasidEntryNotPresent;
        fpd |= pe.Fpd;
        if ((pe.Qw0 & PasidEntry.ReservedMaskQw0(haw)) != 0)
            return FaultReason.SmPasidEntryReserved;

        // S6: the translation type. First-level and nested tables are not modelled.
        ContextFlags flags = ContextFlags.Scalable
            | (fpd ? ContextFlags.FaultProcessingDisabled : 0)
            | (ctx.PageRequestEnable ? ContextFlags.PageRequest : 0)
            | (ctx.Dte ? ContextFlags.DeviceTlb : 0)
            | (pe.Pgsnp ? ContextFlags.PageSnoop : 0)
            | (pe.Pwsnp ? ContextFlags.PageWalkSnoop : 0);
        switch (pe.Pgtt)
        {
            case Pgtt.SecondLevel when Ecap.Slts && AgawSupported(pe.Aw):
                context = new ResolvedContext(pe.SsptPtr, pe.Did, (byte)AgawMath.AgawToLevel(pe.Aw), WidthOf(pe.Aw), flags);
                return FaultReason.None;
            case Pgtt.PassThrough when Ecap.PassThrough:
                context = new ResolvedContext(0, pe.Did, 0, 64, flags | ContextFlags.PassThrough);
                return FaultReason.None;
            default:
                return FaultReason.SmPasidEntryInvalid;
        }
    }

    private bool AgawSupported(int aw) => aw <= 4 && (Cap.Sagaw & (1 << aw)) != 0;

    private byte WidthOf(int aw) => (byte)Math.Min(AgawMath.AgawToWidth(aw), _mgaw);
}
