/* handlers/job: the declared transition table. Every path the pipeline takes is legal; impossible transitions are
 * refused, and gw_run_set_state catches them in one place (strict: abort; otherwise the job fails). */
#include "check.h"
#include "handlers/job.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define S(x) GW_RUN_##x

/* The paths the stages walk (handlers/source*.c, analyze.c), each from INTAKE to DONE. */
static const gw_run_state_t paths[][10] = {
    /* remote standard with captions, Gemini or local analyzer */
    {S(INTAKE), S(FETCH), S(ANALYZE), S(CLEANUP), S(DONE)},
    /* remote standard without captions: audio for Gemini */
    {S(INTAKE), S(FETCH), S(MEDIA), S(UPLOAD), S(ANALYZE), S(CLEANUP), S(DONE)},
    /* remote deep: credits, download, upload; Gemini refuses the file and it is uploaded again */
    {S(INTAKE), S(FETCH), S(CREDITS), S(MEDIA), S(UPLOAD), S(ANALYZE), S(UPLOAD), S(ANALYZE), S(CLEANUP), S(DONE)},
    /* remote deep through the YouTube URL, refused: the video is downloaded after all */
    {S(INTAKE), S(FETCH), S(CREDITS), S(ANALYZE), S(MEDIA), S(UPLOAD), S(ANALYZE), S(CLEANUP), S(DONE)},
    /* remote deep, unknown duration: probed, then credits, then on */
    {S(INTAKE), S(FETCH), S(MEDIA), S(CREDITS), S(MEDIA), S(SCENES), S(ANALYZE), S(CLEANUP), S(DONE)},
    /* local file, sidecar, local analyzer */
    {S(INTAKE), S(PROBE), S(TRANSCRIPT), S(ANALYZE), S(CLEANUP), S(DONE)},
    /* local file, embedded subtitles, deep, local analyzer: scenes */
    {S(INTAKE), S(PROBE), S(TRANSCRIPT), S(SUBTITLES), S(TRANSCRIPT), S(CREDITS), S(MEDIA), S(SCENES), S(ANALYZE), S(CLEANUP)},
    /* local audio file, deep, local analyzer: nothing to look at */
    {S(INTAKE), S(PROBE), S(TRANSCRIPT), S(CREDITS), S(MEDIA), S(ANALYZE), S(CLEANUP), S(DONE)},
    /* failures and aborts at the start */
    {S(INTAKE), S(CLEANUP), S(DONE)},
};

static void test_paths(void)
{
    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
        for (size_t i = 1; i < 10 && paths[p][i] != S(INTAKE); i++) /* INTAKE only starts a path: zero ends one */
            CHECK(gw_run_transition_legal(paths[p][i - 1], paths[p][i]));
}

static void test_outcome_from_every_working_state(void)
{
    for (int s = S(INTAKE); s < S(CLEANUP); s++) {
        CHECK(gw_run_transition_legal(s, S(CLEANUP)));
        CHECK(!gw_run_transition_legal(s, S(DONE))); /* never report without cleaning up */
    }
    CHECK(gw_run_transition_legal(S(CLEANUP), S(DONE)));
}

static void test_impossible(void)
{
    static const gw_run_state_t bad[][2] = {
        {S(DONE), S(CLEANUP)},    {S(DONE), S(INTAKE)},   {S(CLEANUP), S(ANALYZE)}, {S(CLEANUP), S(CLEANUP)},
        {S(INTAKE), S(ANALYZE)},  {S(INTAKE), S(DONE)},   {S(FETCH), S(PROBE)},     {S(PROBE), S(FETCH)},
        {S(PROBE), S(ANALYZE)},   {S(SCENES), S(UPLOAD)}, {S(UPLOAD), S(SCENES)},   {S(ANALYZE), S(FETCH)},
        {S(ANALYZE), S(ANALYZE)}, {S(CREDITS), S(FETCH)}, {S(SUBTITLES), S(FETCH)}, {S(TRANSCRIPT), S(PROBE)},
        {S(ANALYZE), S(INTAKE)},  {S(MEDIA), S(FETCH)},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(!gw_run_transition_legal(bad[i][0], bad[i][1]));
    CHECK(!gw_run_transition_legal(GW_RUN_NSTATES, S(CLEANUP)));
    CHECK(!gw_run_transition_legal(S(INTAKE), GW_RUN_NSTATES));
    /* nothing leaves DONE; every state but INTAKE is reachable from somewhere */
    for (int to = 0; to < GW_RUN_NSTATES; to++) {
        CHECK(!gw_run_transition_legal(S(DONE), to));
        bool reachable = false;
        for (int from = 0; from < GW_RUN_NSTATES; from++)
            reachable = reachable || gw_run_transition_legal(from, to);
        CHECK(reachable == (to != S(INTAKE)));
    }
    for (int s = 0; s < GW_RUN_NSTATES; s++)
        CHECK(strcmp(gw_run_state_name(s), "?") != 0);
}

/* The one function that changes state: legal transitions go through; an impossible one is caught there. A bare run
 * is enough: the abort happens before anything else is touched. */
static void test_set_state(void)
{
    gw_run_t run;
    memset(&run, 0, sizeof(run));
    run.state = S(INTAKE);
    CHECK(gw_run_set_state(&run, S(FETCH)));
    CHECK(gw_run_set_state(&run, S(CREDITS)));
    CHECK(gw_run_set_state(&run, S(MEDIA)));
    CHECK_INT(run.state, S(MEDIA));
    setenv("GW_STRICT_STATES", "1", 1); /* as the integration tests run the daemon */
    CHECK(gw_run_strict());
    gw_job_t job;
    memset(&job, 0, sizeof(job));
    snprintf(job.id, sizeof(job.id), "00000000-0000-0000-0000-000000000001");
    run.job = &job;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        run.state = S(DONE);
        gw_run_set_state(&run, S(ANALYZE)); /* must abort */
        _exit(0);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

int main(void)
{
    test_paths();
    test_outcome_from_every_working_state();
    test_impossible();
    test_set_state();
    return check_report();
}
