%% Erlang/OTP peer benchmarks W1-W7 (see README.md in this directory and
%% /work/shared/reference/perf-anchors.md section 6).
%%
%% Entry point: bench:main(Opts), Opts a proplist:
%%   quick            divide message/operation counts by 10
%%   {only, "W1,W3"}  run a subset (default: W1-W6)
%%   {sched, "1"}     label written into every result line
%%   {w7, N}          run only the W7 memory measurement for N idle processes
%%                    (the runner starts a fresh VM for each N so that the
%%                    RSS delta is not hidden by memory other workloads freed)
%%
%% Result lines (one JSON object each) go to stdout; everything else goes to
%% stderr.
-module(bench).

-export([main/1]).
%% shared with bench_dist (W6r, W8): result lines and progress output
-export([emit/5, log/2, guarded/2]).
%% process entry points
-export([idle/0]).

-define(RUNS, 5).

%% W1-W4 run twice, as halo's do: with a realistic message (a fresh map of
%% three fields, one a short binary), the headline rows, and with a bare
%% integer. Inlined, so the integer rows pay nothing for the choice.
-compile({inline, [msg/3, seq/1]}).
-define(KINDS, [{"record", record}, {"int", int}]).

msg(int, V, _Tag) -> V;
msg(record, V, Tag) -> #{seq => V, tag => Tag, weight => 1.5}.

seq(#{seq := V}) -> V;
seq(V) -> V.

now_ns() -> erlang:monotonic_time(nanosecond).

log(Fmt, Args) -> io:format(standard_error, Fmt ++ "~n", Args).

%% ---------------------------------------------------------------------------
%% main

main(Opts) -> guarded("bench", fun() -> run(Opts) end).

%% Runs Fun with logger output (crash reports etc.) kept off stdout; a
%% failure is logged and halts the VM with status 1.
guarded(Name, Fun) ->
    _ = logger:remove_handler(default),
    ok = logger:add_handler(default, logger_std_h,
                            #{config => #{type => standard_error}}),
    try
        Fun(),
        ok
    catch Class:Reason:Stack ->
        log(Name ++ " failed: ~p:~p~n~p", [Class, Reason, Stack]),
        erlang:halt(1)
    end.

run(Opts) ->
    Quick = proplists:get_bool(quick, Opts),
    Sched = proplists:get_value(sched, Opts, "default"),
    log("erlang: OTP ~s, erts ~s, schedulers ~p/~p online, logical cpus ~p, "
        "quick=~p, sched label ~s",
        [erlang:system_info(otp_release), erlang:system_info(version),
         erlang:system_info(schedulers_online), erlang:system_info(schedulers),
         erlang:system_info(logical_processors_available), Quick, Sched]),
    Ctx = #{quick => Quick, sched => Sched},
    case proplists:get_value(w7, Opts) of
        undefined ->
            Only = case proplists:get_value(only, Opts) of
                       undefined -> ["W1", "W2", "W3", "W4", "W5", "W6"];
                       S -> string:lexemes(S, ",")
                   end,
            [run_workload(W, Ctx) || W <- ["W1", "W2", "W3", "W4", "W5", "W6"],
                                     lists:member(W, Only)],
            ok;
        N when is_integer(N), N > 0 ->
            w7(N, Ctx)
    end.

scale(N, #{quick := true}) -> N div 10;
scale(N, _) -> N.

run_workload("W1", Ctx) ->
    Total = scale(w1_total(), Ctx),
    [measure(Ctx, "W1.pairs=" ++ integer_to_list(P) ++ "." ++ K, "ns/msg",
             fun() -> w1(Kind, P, Total div P) end)
     || P <- [1, 10, 100, 10000], {K, Kind} <- ?KINDS];
run_workload("W2", Ctx) ->
    [measure(Ctx, Id ++ "." ++ K, "ns/msg", fun() -> w2(Kind, P, scale(N, Ctx)) end)
     || {Id, P, N} <- [{"W2.1to1", 1, 3000000}, {"W2.2pairs", 2, 1000000}],
        {K, Kind} <- ?KINDS];
run_workload("W3", Ctx) ->
    %% One set of runs yields both rows.
    [begin
         Id = "W3.fanin." ++ K,
         Rs = runs(Id, fun() -> w3(Kind, 1000, scale(1000, Ctx)) end),
         emit(Ctx, Id, "ns/msg", [T || {T, _} <- Rs]),
         emit(Ctx, Id ++ ".peak_latency", "ms", [L / 1.0e6 || {_, L} <- Rs])
     end || {K, Kind} <- ?KINDS];
run_workload("W4", Ctx) ->
    [measure(Ctx, "W4.ring." ++ K, "ns/hop",
             fun() -> w4(Kind, 10000, scale(1000000, Ctx)) end)
     || {K, Kind} <- ?KINDS];
run_workload("W5", Ctx) ->
    measure(Ctx, "W5.spawn", "ns/op", fun() -> w5(scale(1000000, Ctx)) end);
run_workload("W6", Ctx) ->
    Rs = runs("W6.local", fun() -> w6(scale(1000000, Ctx)) end),
    emit(Ctx, "W6.local.p50", "ns", [P50 || {P50, _} <- Rs]),
    emit(Ctx, "W6.local.p99", "ns", [P99 || {_, P99} <- Rs]);
run_workload(W, _Ctx) ->
    log("unknown workload ~s (W7 is run by the runner in its own VM)", [W]).

%% Messages per W1 run (all pair counts); see README for why not 10M.
w1_total() -> 2000000.

%% ---------------------------------------------------------------------------
%% measurement protocol: 1 warm-up run + ?RUNS measured runs, same OS process

runs(Id, Fun) ->
    garbage_collect(),
    Warm = Fun(),
    log("~s warm-up (cold): ~p", [Id, fmt_val(Warm)]),
    [begin
         garbage_collect(),
         R = Fun(),
         log("~s run ~p: ~p", [Id, I, fmt_val(R)]),
         R
     end || I <- lists:seq(1, ?RUNS)].

fmt_val(V) when is_float(V) -> float_to_list(V, [{decimals, 1}]);
fmt_val(V) when is_tuple(V) -> list_to_tuple([fmt_val(E) || E <- tuple_to_list(V)]);
fmt_val(V) -> V.

measure(Ctx, Id, Metric, Fun) ->
    emit(Ctx, Id, Metric, runs(Id, Fun)).

emit(Ctx, Id, Metric, Values) ->
    emit(Ctx, Id, Metric, Values, "lower").

emit(#{sched := Sched}, Id, Metric, Values, Better) ->
    Sorted = lists:sort([float(V) || V <- Values]),
    N = length(Sorted),
    Median = case N rem 2 of
                 1 -> lists:nth(N div 2 + 1, Sorted);
                 0 -> (lists:nth(N div 2, Sorted) + lists:nth(N div 2 + 1, Sorted)) / 2
             end,
    Line = io_lib:format(
             "{\"id\":\"~s\",\"metric\":\"~s\",\"median\":~s,\"min\":~s,"
             "\"max\":~s,\"runs\":~p,\"better\":\"~s\",\"peer\":\"erlang\","
             "\"sched\":\"~s\"}~n",
             [Id, Metric, num(Median), num(hd(Sorted)), num(lists:last(Sorted)),
              N, Better, Sched]),
    io:put_chars(standard_io, Line),
    log("=> ~s", [string:trim(Line)]).

num(X) when X >= 100 -> float_to_list(X, [{decimals, 1}]);
num(X) -> float_to_list(X, [{decimals, 3}]).

%% ---------------------------------------------------------------------------
%% W1: local ping-pong. P pairs, M messages per pair, each message is the
%% previous integer + 1. Result: wall ns per message.

w1(Kind, P, M) ->
    Self = self(),
    Starters = [begin
                    B = spawn(fun() -> pp_init(Kind, Self, M) end),
                    A = spawn(fun() -> pp_init(Kind, Self, M) end),
                    B ! {peer, A},
                    {A, B}
                end || _ <- lists:seq(1, P)],
    T0 = now_ns(),
    [A ! {start, B} || {A, B} <- Starters],
    wait_n(pp_done, P),
    T1 = now_ns(),
    (T1 - T0) / (P * M).

pp_init(Kind, Parent, M) ->
    receive
        {peer, Peer} -> pp_loop(Kind, Parent, Peer, M);
        {start, Peer} -> pp_send(Kind, Parent, Peer, M, 1)
    end.

pp_loop(Kind, Parent, Peer, M) ->
    receive
        Msg ->
            case seq(Msg) of
                V when V >= M -> Parent ! pp_done;
                V -> pp_send(Kind, Parent, Peer, M, V + 1)
            end
    end.

pp_send(Kind, Parent, Peer, M, V) ->
    Peer ! msg(Kind, V, <<"ping">>),
    if V >= M -> ok;             % the peer receives the last message
       true -> pp_loop(Kind, Parent, Peer, M)
    end.

wait_n(_Tag, 0) -> ok;
wait_n(Tag, K) ->
    receive Tag -> wait_n(Tag, K - 1) end.

%% ---------------------------------------------------------------------------
%% W2: one-way flood. P senders each send N integers to their own sink; the
%% sink counts them and reports. Result: wall ns per message (P*N messages).

w2(Kind, P, N) ->
    Self = self(),
    Senders = [begin
                   Sink = spawn(fun() -> sink(Self, N) end),
                   spawn(fun() -> receive go -> flood(Kind, Sink, N) end end)
               end || _ <- lists:seq(1, P)],
    T0 = now_ns(),
    [S ! go || S <- Senders],
    wait_n(sink_done, P),
    T1 = now_ns(),
    (T1 - T0) / (P * N).

sink(Parent, 0) -> Parent ! sink_done;
sink(Parent, K) -> receive _ -> sink(Parent, K - 1) end.

flood(_Kind, _To, 0) -> ok;
flood(Kind, To, K) -> To ! msg(Kind, K, <<"item">>), flood(Kind, To, K - 1).

%% ---------------------------------------------------------------------------
%% W3: fan-in. S senders x N messages -> 1 receiver. Each message is the
%% sender's monotonic timestamp (ns); the receiver tracks max(now - stamp).
%% Result: {wall ns per message, peak latency ns}.

w3(Kind, S, N) ->
    Self = self(),
    Total = S * N,
    Recv = spawn(fun() -> fanin_recv(Self, Total, 0) end),
    Senders = [spawn(fun() -> receive go -> stamp_flood(Kind, Recv, N) end end)
               || _ <- lists:seq(1, S)],
    T0 = now_ns(),
    [P ! go || P <- Senders],
    Peak = receive {fanin_done, Pk} -> Pk end,
    T1 = now_ns(),
    {(T1 - T0) / Total, Peak}.

fanin_recv(Parent, 0, Peak) -> Parent ! {fanin_done, Peak};
fanin_recv(Parent, K, Peak) ->
    receive
        #{at := Stamp} ->
            L = erlang:monotonic_time(nanosecond) - Stamp,
            fanin_recv(Parent, K - 1, max(L, Peak));
        Stamp ->
            L = erlang:monotonic_time(nanosecond) - Stamp,
            fanin_recv(Parent, K - 1, max(L, Peak))
    end.

stamp_flood(_Kind, _To, 0) -> ok;
stamp_flood(int, To, K) ->
    To ! erlang:monotonic_time(nanosecond),
    stamp_flood(int, To, K - 1);
stamp_flood(record, To, K) ->
    To ! #{seq => K, tag => <<"stamp">>, at => erlang:monotonic_time(nanosecond)},
    stamp_flood(record, To, K - 1).

%% ---------------------------------------------------------------------------
%% W4: ring of R processes, token passed H hops. Result: wall ns per hop.

w4(Kind, R, H) ->
    Self = self(),
    Nodes = [spawn(fun() -> ring_init(Kind, Self) end) || _ <- lists:seq(1, R)],
    [First | _] = Nodes,
    link_ring(Nodes, First),
    T0 = now_ns(),
    First ! msg(Kind, H, <<"token">>),
    receive ring_done -> ok end,
    T1 = now_ns(),
    [exit(P, kill) || P <- Nodes],
    (T1 - T0) / H.

link_ring([Last], First) -> Last ! {next, First};
link_ring([P | [Next | _] = Rest], First) -> P ! {next, Next}, link_ring(Rest, First).

ring_init(Kind, Parent) ->
    receive {next, Next} -> ring_loop(Kind, Parent, Next) end.

ring_loop(Kind, Parent, Next) ->
    receive
        Msg ->
            case seq(Msg) of
                0 -> Parent ! ring_done;
                V -> Next ! msg(Kind, V - 1, <<"token">>)
            end,
            ring_loop(Kind, Parent, Next)
    end.

%% ---------------------------------------------------------------------------
%% W5: serial spawn_monitor of a child that exits normally at once; wait for
%% the DOWN. Result: ns per spawn+exit.

w5(N) ->
    T0 = now_ns(),
    churn(N),
    T1 = now_ns(),
    (T1 - T0) / N.

churn(0) -> ok;
churn(K) ->
    {Pid, Ref} = spawn_monitor(fun() -> ok end),
    receive {'DOWN', Ref, process, Pid, normal} -> churn(K - 1) end.

%% ---------------------------------------------------------------------------
%% W6: local call round trip to an echo server: monitor + send + receive
%% (5000 ms timeout armed) + demonitor, each call timed individually.
%% Durations go into an off-heap histogram (exact below 64 us, power-of-two
%% buckets above) so recording does not allocate on the caller's heap.
%% Result: {p50 ns, p99 ns}.

-define(EXACT, 65536).

w6(N) ->
    Server = spawn(fun echo/0),
    Hist = counters:new(?EXACT + 64, []),
    calls(Server, Hist, N),
    exit(Server, kill),
    percentiles(Hist, N, [0.50, 0.99]).

echo() ->
    receive
        {call, From, Ref, Msg} -> From ! {Ref, Msg}, echo()
    end.

calls(_Server, _Hist, 0) -> ok;
calls(Server, Hist, K) ->
    T0 = erlang:monotonic_time(nanosecond),
    K = call(Server, K),
    D = erlang:monotonic_time(nanosecond) - T0,
    record(Hist, D),
    calls(Server, Hist, K - 1).

call(Server, Msg) ->
    Ref = erlang:monitor(process, Server),
    Server ! {call, self(), Ref, Msg},
    receive
        {Ref, Reply} ->
            erlang:demonitor(Ref, [flush]),
            Reply;
        {'DOWN', Ref, process, _, Reason} ->
            exit({server_down, Reason})
    after 5000 ->
        erlang:demonitor(Ref, [flush]),
        exit(call_timeout)
    end.

record(Hist, D) when D < ?EXACT -> counters:add(Hist, D + 1, 1);
record(Hist, D) -> counters:add(Hist, ?EXACT + bitlen(D, 0) + 1, 1).

bitlen(0, B) -> B;
bitlen(D, B) -> bitlen(D bsr 1, B + 1).

%% value represented by histogram index I (1-based)
bucket_value(I) when I =< ?EXACT -> I - 1;
bucket_value(I) -> (1 bsl (I - ?EXACT - 1)) - 1.   % upper bound of the bucket

percentiles(Hist, N, Qs) ->
    Ranks = [max(1, ceil(Q * N)) || Q <- Qs],
    list_to_tuple(pct_scan(Hist, 1, ?EXACT + 64, 0, Ranks)).

pct_scan(_Hist, _I, _Max, _Cum, []) -> [];
pct_scan(_Hist, I, Max, _Cum, Ranks) when I > Max ->
    [bucket_value(Max) || _ <- Ranks];
pct_scan(Hist, I, Max, Cum, [R | Rs] = Ranks) ->
    Cum1 = Cum + counters:get(Hist, I),
    if Cum1 >= R -> [bucket_value(I) | pct_scan_same(Hist, I, Max, Cum, Cum1, Rs)];
       true -> pct_scan(Hist, I + 1, Max, Cum1, Ranks)
    end.

%% remaining ranks may fall in the same bucket
pct_scan_same(_Hist, _I, _Max, _Cum, _Cum1, []) -> [];
pct_scan_same(Hist, I, Max, Cum, Cum1, [R | Rs]) when Cum1 >= R ->
    [bucket_value(I) | pct_scan_same(Hist, I, Max, Cum, Cum1, Rs)];
pct_scan_same(Hist, I, Max, _Cum, Cum1, Ranks) ->
    pct_scan(Hist, I + 1, Max, Cum1, Ranks).

%% ---------------------------------------------------------------------------
%% W7: memory per idle process. Spawn N processes parked in receive (no pid
%% list is kept, so the caller's heap does not grow); bytes per process from
%% erlang:memory(processes) and from the OS RSS (VmRSS) delta. One cold
%% measurement in a fresh VM (the runner starts one per N); the VM halts
%% afterwards instead of killing the processes.

idle() ->
    receive stop -> ok end.

w7(N, Ctx) ->
    Label = case N of
                1000000 -> "1M";
                100000 -> "100k";
                _ when N rem 1000000 =:= 0 -> integer_to_list(N div 1000000) ++ "M";
                _ when N rem 1000 =:= 0 -> integer_to_list(N div 1000) ++ "k";
                _ -> integer_to_list(N)
            end,
    garbage_collect(),
    settle(),
    Mem0 = erlang:memory(processes),
    Rss0 = rss_bytes(),
    T0 = now_ns(),
    spawn_idle(N),
    T1 = now_ns(),
    settle(),
    garbage_collect(),
    Mem1 = erlang:memory(processes),
    Rss1 = rss_bytes(),
    Count = erlang:system_info(process_count),
    log("W7 ~s: spawned ~p idle processes in ~.1f ms (~.1f ns/spawn, cold); "
        "process_count ~p; memory(processes) ~p -> ~p; VmRSS ~p -> ~p",
        [Label, N, (T1 - T0) / 1.0e6, (T1 - T0) / N, Count, Mem0, Mem1, Rss0, Rss1]),
    emit(Ctx, "W7.mem." ++ Label, "B/proc", [(Mem1 - Mem0) / N]),
    emit(Ctx, "W7.rss." ++ Label, "B/proc", [(Rss1 - Rss0) / N]).

spawn_idle(0) -> ok;
spawn_idle(K) -> spawn(?MODULE, idle, []), spawn_idle(K - 1).

%% wait until every scheduler's run queue is empty (all children parked)
settle() ->
    case erlang:statistics(total_run_queue_lengths_all) of
        0 -> timer:sleep(50);
        _ -> timer:sleep(10), settle()
    end.

rss_bytes() ->
    {ok, B} = file:read_file("/proc/" ++ os:getpid() ++ "/status"),
    [Line] = [L || L <- binary:split(B, <<"\n">>, [global]),
                   binary:match(L, <<"VmRSS:">>) =/= nomatch],
    [_, Kb | _] = string:lexemes(binary_to_list(Line), " \t"),
    list_to_integer(Kb) * 1024.
