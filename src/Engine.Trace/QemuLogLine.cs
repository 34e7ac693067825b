using System.Globalization;

namespace Engine.Trace;

/// <summary>What one line of a QEMU <c>-trace 'vtd_*'</c> log is.</summary>
public enum QemuEventKind : byte
{
    /// <summary>Not a trace event this importer reads (another <c>vtd_*</c> event, or no event at all).</summary>
    Skipped = 0,

    /// <summary><c>vtd_iotlb_page_hit</c>.</summary>
    Hit,

    /// <summary><c>vtd_iotlb_page_update</c>.</summary>
    Update,

    /// <summary><c>vtd_inv_desc_iotlb_global</c>.</summary>
    InvalidateGlobal,

    /// <summary><c>vtd_inv_desc_iotlb_domain</c>.</summary>
    InvalidateDomain,

    /// <summary><c>vtd_inv_desc_iotlb_pages</c>.</summary>
    InvalidatePages,

    /// <summary><c>vtd_inv_desc_iotlb_pasid_pages</c>.</summary>
    InvalidatePasidPages,

    /// <summary><c>vtd_inv_desc_iotlb_pasid</c>.</summary>
    InvalidatePasid,

    /// <summary>A line of one of the events above whose fields do not parse.</summary>
    Malformed,
}

/// <summary>One parsed log line.</summary>
public readonly record struct QemuEvent(QemuEventKind Kind, ushort Sid = 0, ulong Address = 0, ulong Slpte = 0, ushort Domain = 0, byte Mask = 0, uint Pasid = 0,
    string? Problem = null, bool OtherVtd = false);

/// <summary>
/// Parses lines of QEMU's log trace backend (hw/i386/trace-events, QEMU 7.2 – 10): an optional
/// <c>PID@SECONDS.MICROS:</c> prefix, the event name, then the event's format string with its values
/// (<c>IOTLB page hit sid 0x10 iova 0x7ffff000 slpte 0x1234003 domain 0x1</c>). Fields are found
/// by their names, so the wording around them does not matter.
/// </summary>
public static class QemuLogLine
{
    /// <summary>Parses one line.</summary>
    public static QemuEvent Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        ReadOnlySpan<char> s = line.AsSpan().Trim();
        if (s.Length > 0 && char.IsAsciiDigit(s[0]))
        {
            // PID@SECONDS.MICROS:  (the log backend with timestamps)
            int at = s.IndexOf('@');
            int colon = s.IndexOf(':');
            if (at > 0 && colon > at && IsDigits(s[..at]) && IsTimestamp(s[(at + 1)..colon]))
                s = s[(colon + 1)..].TrimStart();
            else if (s.Contains("vtd_", StringComparison.Ordinal))
                return Malformed("a line that starts with a digit must start with a PID@SECONDS.MICROS: prefix");
            else
                return new QemuEvent(QemuEventKind.Skipped);
        }
        if (!s.StartsWith("vtd_", StringComparison.Ordinal))
            return new QemuEvent(QemuEventKind.Skipped);
        int space = s.IndexOf(' ');
        ReadOnlySpan<char> name = space < 0 ? s : s[..space];
        ReadOnlySpan<char> args = space < 0 ? [] : s[(space + 1)..];
        switch (name)
        {
            case "vtd_iotlb_page_hit":
            case "vtd_iotlb_page_update":
            {
                QemuEventKind kind = name.SequenceEqual("vtd_iotlb_page_hit") ? QemuEventKind.Hit : QemuEventKind.Update;
                if (Field(args, "sid", 0xFFFF, out ulong sid) is { } e1)
                    return Malformed(e1);
                if (Field(args, "iova", ulong.MaxValue, out ulong iova) is { } e2)
                    return Malformed(e2);
                if (Field(args, "slpte", ulong.MaxValue, out ulong slpte) is { } e3)
                    return Malformed(e3);
                if (Field(args, "domain", 0xFFFF, out ulong domain) is { } e4)
                    return Malformed(e4);
                return new QemuEvent(kind, (ushort)sid, iova, slpte, (ushort)domain);
            }
            case "vtd_inv_desc_iotlb_global":
                return new QemuEvent(QemuEventKind.InvalidateGlobal);
            case "vtd_inv_desc_iotlb_domain":
            {
                if (Field(args, "domain", 0xFFFF, out ulong domain) is { } e)
                    return Malformed(e);
                return new QemuEvent(QemuEventKind.InvalidateDomain, Domain: (ushort)domain);
            }
            case "vtd_inv_desc_iotlb_pages":
            case "vtd_inv_desc_iotlb_pasid_pages":
            {
                bool pasidPages = name.SequenceEqual("vtd_inv_desc_iotlb_pasid_pages");
                if (Field(args, "domain", 0xFFFF, out ulong domain) is { } e1)
                    return Malformed(e1);
                if (Field(args, "addr", ulong.MaxValue, out ulong addr) is { } e2)
                    return Malformed(e2);
                if (Field(args, "mask", 52, out ulong mask) is { } e3)
                    return Malformed(e3);
                ulong pasid = 0;
                if (pasidPages && Field(args, "pasid", 0xFFFFF, out pasid) is { } e4)
                    return Malformed(e4);
                return new QemuEvent(pasidPages ? QemuEventKind.InvalidatePasidPages : QemuEventKind.InvalidatePages, Address: addr, Domain: (ushort)domain,
                    Mask: (byte)mask, Pasid: (uint)pasid);
            }
            case "vtd_inv_desc_iotlb_pasid":
            {
                if (Field(args, "domain", 0xFFFF, out ulong domain) is { } e1)
                    return Malformed(e1);
                if (Field(args, "pasid", 0xFFFFF, out ulong pasid) is { } e2)
                    return Malformed(e2);
                return new QemuEvent(QemuEventKind.InvalidatePasid, Domain: (ushort)domain, Pasid: (uint)pasid);
            }
            default:
                return new QemuEvent(QemuEventKind.Skipped, OtherVtd: true);
        }
    }

    private static QemuEvent Malformed(string problem) => new(QemuEventKind.Malformed, Problem: problem);

    // Finds "NAME VALUE" among the space-separated words and parses VALUE as hex (0x optional).
    private static string? Field(ReadOnlySpan<char> args, string key, ulong max, out ulong value)
    {
        value = 0;
        ReadOnlySpan<char> rest = args;
        while (!rest.IsEmpty)
        {
            rest = rest.TrimStart(' ');
            int end = rest.IndexOf(' ');
            ReadOnlySpan<char> word = end < 0 ? rest : rest[..end];
            rest = end < 0 ? [] : rest[(end + 1)..];
            if (!word.SequenceEqual(key))
                continue;
            rest = rest.TrimStart(' ');
            int valueEnd = rest.IndexOf(' ');
            ReadOnlySpan<char> text = valueEnd < 0 ? rest : rest[..valueEnd];
            ReadOnlySpan<char> digits = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
            if (digits.IsEmpty || !ulong.TryParse(digits, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value))
                return $"'{key}' is followed by '{text}', not a hexadecimal number";
            if (value > max)
                return $"'{key}' 0x{value:x} is larger than its maximum 0x{max:x}";
            return null;
        }
        return $"no '{key} 0x…' field";
    }

    private static bool IsDigits(ReadOnlySpan<char> s)
    {
        foreach (char c in s)
        {
            if (!char.IsAsciiDigit(c))
                return false;
        }
        return !s.IsEmpty;
    }

    private static bool IsTimestamp(ReadOnlySpan<char> s)
    {
        int dot = s.IndexOf('.');
        return dot > 0 && IsDigits(s[..dot]) && IsDigits(s[(dot + 1)..]);
    }
}
