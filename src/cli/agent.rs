//! `mtlscope agent`, what the kubectl plugin's helper pod runs on a node: `capture -o jsonl`
//! in the network namespace of a container's process, or (`--pcap`) the packets themselves.

use super::capture::stream_jsonl;
use super::flags::AgentArgs;
use super::run::{report_capture, StopSignals};
use crate::live::capture::LiveOptions;
use crate::live::netns::NetnsTarget;
use crate::pipeline::filter::CompiledFilter;
use crate::pipeline::runner::PacketSink;
use crate::pipeline::source::LinkType;
use crate::report::{EXIT_BAD_INPUT, EXIT_OK};
use anyhow::Result;

/// `mtlscope agent`: `capture -o jsonl` in the network namespace of a container's process.
pub fn agent(args: &AgentArgs) -> Result<i32> {
    let pid = crate::kube::agent::find_container_pid(&args.proc_root, &args.container_id)?;
    let ns = args.proc_root.join(pid.to_string()).join("ns/net");
    let program = match (&args.bpf_program, args.bpf_link_type) {
        (Some(text), Some(link)) => Some(CompiledFilter::parse(text, LinkType(link))?),
        _ => None,
    };
    let live = LiveOptions {
        interface: args.interface.clone(),
        netns: Some(NetnsTarget::Netns(ns.display().to_string())),
        filter: args.filter.clone(),
        program,
        // `capture`'s defaults for -s and --buffer-size.
        snaplen: 262_144,
        promisc: false,
        duration: args.stop.duration,
        count: args.stop.count,
        write: match args.pcap {
            true => Some("/dev/stdout".into()),
            false => args.stop.write.clone(),
        },
        buffer_size: 32 << 20,
    };
    eprintln!("mtlscope agent: container {} is process {pid}", args.container_id);
    if args.pcap {
        // Packets leave the node only because -w asked for them; the plugin makes the verdicts.
        // The kernel's counters go to standard error, as one JSON line the plugin reads.
        let captured = {
            let stop = StopSignals::new(args.stop_on_stdin)?;
            crate::live::capture::run(&live, stop.flag(), &mut WriteOnly)?
        };
        eprintln!("{}", serde_json::json!({ "capture": captured.stats }));
        report_capture(&captured.stats);
        // The -w stream is complete up to the break; the plugin reads this line and says why.
        if let Some(e) = captured.broke_off {
            eprintln!("mtlscope: capture on '{}' stopped early: {e}", live.interface);
            return Ok(EXIT_BAD_INPUT);
        }
        Ok(EXIT_OK)
    } else {
        stream_jsonl(&live, args.limits.config(), None, args.stop_on_stdin)
    }
}

/// Packets that only go to the `-w` file.
struct WriteOnly;

impl PacketSink for WriteOnly {
    fn packet(&mut self, _ts_ns: u64, _link: LinkType, _data: &[u8]) {}
}
