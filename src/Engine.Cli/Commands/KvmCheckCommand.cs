using System.CommandLine;
using System.Text.Json;
using System.Text.RegularExpressions;
using Engine.Control;
using Engine.Iommu;
using Engine.Kvm;
using Engine.Memory;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine kvm-check</c>: builds a platform with one IOMMU of the given registers and one device,
/// exports a TDP of the given shape and tries to allocate and attach a KVM domain.
/// </summary>
internal static partial class KvmCheckCommand
{
    /// <summary>Exit code for an incompatible IOMMU.</summary>
    public const int ExitRefused = 3;

    public static Command Create(TextWriter output)
    {
        var registers = new RegisterOptions();
        var level = NumberOption.Int("--level", "TDP levels: 4 or 5.", 4, 5, range: "4 or 5");
        var huge = NumberOption.Int("--max-huge-page-level", "KVM's largest page: 1 (4K), 2 (2M) or 3 (1G).", 1, 3, range: "1, 2 or 3");
        var json = new Option<bool>("--json") { Description = "Print one JSON object." };
        var command = new Command("kvm-check", "Check whether an IOMMU with these registers can carry a KVM domain (the seed's compatibility rules).")
        {
            level, huge, json,
        };
        registers.AddTo(command);
        command.SetAction(parse =>
        {
            (CapabilityRegister cap, ExtendedCapabilityRegister ecap) = registers.Resolve(parse);
            CheckResult result = Check(cap, ecap, parse.GetValue(level), parse.GetValue(huge));
            if (parse.GetValue(json))
            {
                output.WriteLine(result.Compatible
                    ? JsonSerializer.Serialize(new KvmCheckCompatible(true), ReportJson.Relaxed.KvmCheckCompatible)
                    : JsonSerializer.Serialize(new KvmCheckRefused(false, result.Errno.ToString(), result.Reasons), ReportJson.Relaxed.KvmCheckRefused));
            }
            else if (result.Compatible)
            {
                output.WriteLine("compatible: a KVM domain can be allocated and attached.");
            }
            else
            {
                output.WriteLine($"not compatible ({result.Errno}):");
                foreach (string reason in result.Reasons)
                    output.WriteLine($"  - {reason}");
            }
            return result.Compatible ? 0 : ExitRefused;
        });
        return command;
    }

    internal sealed record CheckResult(bool Compatible, Errno Errno, IReadOnlyList<string> Reasons);

    internal static CheckResult Check(CapabilityRegister cap, ExtendedCapabilityRegister ecap, int level, int maxHugePageLevel)
    {
        using var platform = new Platform(new PlatformOptions { Memory = new HostMemoryOptions { Size = 256UL << 20 } });
        IommuInstance iommu;
        try
        {
            iommu = platform.AddIommu("dmar0", cap, ecap);
        }
        catch (EngineException e)
        {
            // The unit cannot even be built (e.g. no usable width, registers that overlap): still say
            // every condition the KVM domain would fail, then why the unit itself is unusable.
            var meta = new ExportedTdp(TdpType.Ept, level, 0, maxHugePageLevel, Paging.ReservedBitMasks.ForEpt(46, maxHugePageLevel, true));
            List<string> reasons = [.. KvmDomainCompatibility.Check(new DriverView(cap, ecap), meta), WithoutParameterName(e.Reason)];
            return new CheckResult(false, reasons.Count > 1 ? Errno.EOPNOTSUPP : e.Errno, reasons);
        }
        Device device = platform.AddDevice("dev", TranslationRequest.Bdf(1, 0, 0), iommu, DeviceAbilities.Ats | DeviceAbilities.Pri);
        Vm vm = platform.CreateVm(new VmOptions { TdpLevels = level, MaxHugePageLevel = maxHugePageLevel });
        using KvmTdpFd tdp = vm.ExportTdp();
        try
        {
            KvmDomain domain = platform.AllocateKvmDomain(device, tdp);
            // The check is the IOMMU against the domain (patches 18 and 20); whether a device behind
            // it can take IO page faults is the device's matter, so the attach does not ask for them.
            domain.Attach(device, AttachFlags.AllowWithoutPageRequests);
            domain.Detach(device);
            domain.Dispose();
            return new CheckResult(true, 0, []);
        }
        catch (KvmDomainRefusedException e)
        {
            return new CheckResult(false, e.Errno, e.Reasons);
        }
        catch (EngineException e)
        {
            return new CheckResult(false, e.Errno, [WithoutParameterName(e.Reason)]);
        }
    }

    /// <summary>
    /// The engine words some refusals with an ArgumentException's message, which ends in
    /// " (Parameter 'declarations')": .NET's name for the argument, nothing a reader of the reason can use.
    /// </summary>
    internal static string WithoutParameterName(string reason) => ParameterSuffix().Replace(reason, "");

    [GeneratedRegex(@"\s*\(Parameter '[^']*'\)")]
    private static partial Regex ParameterSuffix();
}

/// <summary>JSON of a compatible check.</summary>
internal sealed record KvmCheckCompatible(bool Compatible);

/// <summary>JSON of a refused check.</summary>
internal sealed record KvmCheckRefused(bool Compatible, string Errno, IReadOnlyList<string> Reasons);
