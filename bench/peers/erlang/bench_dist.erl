%% Erlang/OTP distribution peer benchmarks W6r and W8 (see README.md in this
%% directory and /work/shared/reference/perf-anchors.md section 6).
%%
%% Two VMs (two OS processes) connected by Erlang distribution over loopback.
%% The runner starts node B first with serve/1; B only hosts the processes
%% that node A spawns on it. Node A runs main/1, which drives every
%% measurement and takes all timestamps on A's monotonic clock.
%%
%% main(Opts), Opts a proplist:
%%   {peer, 'b@127.0.0.1'}  node B (required)
%%   {only, "W6r,W8"}       subset (default: both)
%%   quick                  divide counts by 10
%%   {sched, "1"}           label written into every result line
%%
%% Result lines (one JSON object each, written by bench:emit/5) go to stdout;
%% everything else goes to stderr.
-module(bench_dist).

-export([main/1, serve/1]).
%% process entry points, spawned on node B
-export([echo/0, sink/3]).

-define(W6R_RUNS, 5).
-define(W6R_WARMUP, 10000).
-define(W8_RUNS, 3).

now_ns() -> erlang:monotonic_time(nanosecond).

log(Fmt, Args) -> bench:log(Fmt, Args).

%% ---------------------------------------------------------------------------
%% node B

%% Wait for node A to connect, then halt once it disconnects (A halts when it
%% is done or fails), so B never outlives the benchmark even if the runner's
%% cleanup does not get to run.
serve(ANode) ->
    ok = net_kernel:monitor_nodes(true),
    log("node ~p up, waiting for ~p", [node(), ANode]),
    receive
        {nodeup, ANode} -> ok
    after 60000 ->
        log("~p: ~p did not connect within 60 s", [node(), ANode]),
        erlang:halt(1)
    end,
    serve_wait(ANode).

serve_wait(ANode) ->
    receive
        {nodedown, ANode} -> erlang:halt(0);
        _ -> serve_wait(ANode)
    end.

%% ---------------------------------------------------------------------------
%% node A

main(Opts) -> bench:guarded("bench_dist", fun() -> run(Opts) end).

run(Opts) ->
    Peer = proplists:get_value(peer, Opts),
    Quick = proplists:get_bool(quick, Opts),
    Sched = proplists:get_value(sched, Opts, "default"),
    Only = string:lexemes(proplists:get_value(only, Opts, "W6r,W8"), ","),
    connect(Peer, 100),
    %% {nodedown, Peer} if B goes away: W8 fails at once instead of waiting
    %% for its timeout (a W6r call fails after its own 5 s).
    true = erlang:monitor_node(Peer, true),
    %% B loads the module from the same -pa directory; check it is the same
    %% code, since A spawns B's processes by module and function name.
    Md5 = bench_dist:module_info(md5),
    Md5 = erpc:call(Peer, bench_dist, module_info, [md5]),
    log("erlang dist: OTP ~s, erts ~s, A ~p, B ~p, schedulers A ~p / B ~p, "
        "dist_buf_busy_limit ~p, quick=~p, sched label ~s",
        [erlang:system_info(otp_release), erlang:system_info(version),
         node(), Peer, erlang:system_info(schedulers_online),
         erpc:call(Peer, erlang, system_info, [schedulers_online]),
         erlang:system_info(dist_buf_busy_limit), Quick, Sched]),
    Ctx = #{quick => Quick, sched => Sched, peer => Peer},
    [run_workload(W, Ctx) || W <- ["W6r", "W8"], lists:member(W, Only)],
    %% B halts on nodedown; tell it directly as well.
    erpc:cast(Peer, erlang, halt, [0]),
    ok.

%% B is started just before A; retry until its name is registered.
connect(Peer, 0) -> error({cannot_connect, Peer});
connect(Peer, Tries) ->
    case net_kernel:connect_node(Peer) of
        true -> ok;
        _ -> timer:sleep(100), connect(Peer, Tries - 1)
    end.

scale(N, #{quick := true}) -> N div 10;
scale(N, _) -> N.

run_workload("W6r", Ctx = #{peer := Peer}) ->
    N = scale(100000, Ctx),
    Server = spawn(Peer, ?MODULE, echo, []),
    %% Warm-up: socket buffers, both nodes' first-call paths, the server's heap.
    Warm = w6r(Server, scale(?W6R_WARMUP, Ctx)),
    log("W6r.remote_call warm-up (~p calls): p50/p99 ~p", [scale(?W6R_WARMUP, Ctx), Warm]),
    Rs = [begin
              garbage_collect(),
              R = w6r(Server, N),
              log("W6r.remote_call run ~p (~p calls): p50/p99 ~p", [I, N, R]),
              R
          end || I <- lists:seq(1, ?W6R_RUNS)],
    exit(Server, kill),
    bench:emit(Ctx, "W6r.remote_call.p50", "ns", [P50 || {P50, _} <- Rs], "lower"),
    bench:emit(Ctx, "W6r.remote_call.p99", "ns", [P99 || {_, P99} <- Rs], "lower");
run_workload("W8", Ctx) ->
    [w8_row(Ctx, Name, Bytes, scale(Total, Ctx), Pairs)
     || {Name, Bytes, Total} <- [{"int", 8, 1000000},
                                 {"100B", 100, 1000000},
                                 {"1KB", 1024, 1000000},
                                 {"10KB", 10240, 200000},
                                 {"200KB", 204800, 10000}],
        Pairs <- [1, 100]],
    ok.

%% ---------------------------------------------------------------------------
%% W6r: remote call round trip. The caller on A sends {call, self(), Ref, Msg}
%% to an echo process on B and waits for {Ref, Msg} with a 5 s timeout armed.
%% No monitor: a monitor on a remote process costs two more distribution
%% messages per call (monitor and demonitor) on top of request and reply, so
%% gen_server:call is the more expensive idiom here; the timeout is what
%% catches a dead server or a lost connection. make_ref() right before the
%% receive lets the compiler skip older mailbox messages (ref-trick receive).
%%
%% Each call is timed on its own; the durations go into an off-heap counters
%% array, one slot per call, so recording does not grow the caller's heap.
%% Result: {p50 ns, p99 ns}, exact (nearest-rank percentiles).

w6r(Server, N) ->
    Slots = counters:new(N, []),
    rcalls(Server, Slots, N),
    Sorted = list_to_tuple(lists:sort([counters:get(Slots, I) || I <- lists:seq(1, N)])),
    {element(rank(0.50, N), Sorted), element(rank(0.99, N), Sorted)}.

rank(Q, N) -> max(1, ceil(Q * N)).

rcalls(_Server, _Slots, 0) -> ok;
rcalls(Server, Slots, K) ->
    T0 = erlang:monotonic_time(nanosecond),
    K = rcall(Server, K),
    D = erlang:monotonic_time(nanosecond) - T0,
    counters:put(Slots, K, D),
    rcalls(Server, Slots, K - 1).

rcall(Server, Msg) ->
    Ref = make_ref(),
    Server ! {call, self(), Ref, Msg},
    receive
        {Ref, Reply} -> Reply
    after 5000 ->
        exit(call_timeout)
    end.

echo() ->
    receive
        {call, From, Ref, Msg} -> From ! {Ref, Msg}, echo()
    end.

%% ---------------------------------------------------------------------------
%% W8: remote one-way throughput. P sender processes on A, each with its own
%% sink process on B. Each sender sends Total div P copies of the payload;
%% each sink counts its share and then tells the collector (this process, on
%% A). The time runs from the first "go" to the last sink's report, so it
%% covers every byte crossing the connection and being received on B.
%%
%% The payload is built once per run and shared by all senders: a small
%% integer (the sender's countdown, as in W2) or a binary of the given size
%% (off-heap, reference-counted above 64 bytes). Senders are throttled only by
%% the distribution's own back-pressure (a sender is suspended while the
%% connection's output queue is over dist_buf_busy_limit, 1 MB by default).
%% Result: {msg/s, MB/s}; MB/s counts payload bytes only (8 per integer).

w8_row(Ctx, Name, Bytes, Total, Pairs) ->
    Id = "W8." ++ Name ++ "." ++ integer_to_list(Pairs) ++ "p",
    Run = fun(Msgs) -> w8(maps:get(peer, Ctx), Pairs, max(1, Msgs div Pairs), Bytes) end,
    %% The warm-up sends a tenth of the messages: enough to spawn the same
    %% processes and fill the same buffers, and it keeps the whole remote set
    %% within about 3 minutes.
    garbage_collect(),
    Warm = Run(Total div 10),
    log("~s warm-up (~p msgs): ~s", [Id, Total div 10, fmt_w8(Warm)]),
    Rs = [begin
              garbage_collect(),
              R = Run(Total),
              log("~s run ~p: ~s", [Id, I, fmt_w8(R)]),
              R
          end || I <- lists:seq(1, ?W8_RUNS)],
    bench:emit(Ctx, Id, "msg/s", [M || {M, _} <- Rs], "higher"),
    bench:emit(Ctx, Id ++ ".MB", "MB/s", [B || {_, B} <- Rs], "higher").

fmt_w8({Msgs, MB}) -> io_lib:format("~b msg/s, ~.1f MB/s", [round(Msgs), MB]).

w8(Peer, P, Share, Bytes) ->
    Self = self(),
    Tag = make_ref(),
    Payload = case Bytes of
                  8 -> int;
                  _ -> binary:copy(<<"x">>, Bytes)
              end,
    %% spawn/4 on a remote node returns once B has created the process.
    Sinks = [spawn(Peer, ?MODULE, sink, [Self, Tag, Share]) || _ <- lists:seq(1, P)],
    Senders = [spawn(fun() -> receive go -> flood(Sink, Payload, Share) end end)
               || Sink <- Sinks],
    T0 = now_ns(),
    [S ! go || S <- Senders],
    wait_done(Peer, Tag, P),
    T1 = now_ns(),
    Msgs = P * Share,
    Secs = (T1 - T0) / 1.0e9,
    {Msgs / Secs, Msgs * Bytes / Secs / 1.0e6}.

flood(_To, _Payload, 0) -> ok;
flood(To, int, K) -> To ! K, flood(To, int, K - 1);
flood(To, Bin, K) -> To ! Bin, flood(To, Bin, K - 1).

sink(Collector, Tag, 0) -> Collector ! {Tag, sink_done};
sink(Collector, Tag, K) -> receive _ -> sink(Collector, Tag, K - 1) end.

wait_done(_Peer, _Tag, 0) -> ok;
wait_done(Peer, Tag, K) ->
    receive
        {Tag, sink_done} -> wait_done(Peer, Tag, K - 1);
        {nodedown, Peer} -> error({nodedown, Peer})
    after 120000 ->
        error({w8_timeout, K, sinks_not_done})
    end.
