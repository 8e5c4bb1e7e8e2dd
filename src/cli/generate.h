/*
 * generate.h - `meshctl generate`: realistic, deterministic data for the example scenarios.
 *
 *     meshctl generate factory|home|health|trucks [options]  > data.lp
 *
 * Writes InfluxDB line protocol (or CSV for one product) to stdout for the products of
 * examples/{factory,home,healthcare,trucks}: machine telemetry of a plant, a home's room
 * climate and electricity, ICU bedside vitals, and the TSBS iot use case (a trucking fleet).
 * The output depends only on the options: the same --seed gives the same bytes. `meshctl
 * generate --help` lists the scenarios and options; examples/README.md shows how to load the
 * data into meshd.
 */
#ifndef MESH_CLI_GENERATE_H
#define MESH_CLI_GENERATE_H

/*
 * Runs `meshctl generate`. argv[0] is the command's name ("generate"); the scenario and the
 * options follow, as main's argv would hold them for the subcommand. (When argv[0] is already
 * a scenario name or an option, parsing starts there, so a dispatcher may pass either form.)
 * Writes the data to stdout and messages to stderr. Returns the process exit code: 0 when
 * the data was written, 1 on a usage error (with a message), 8 (MESH_IO's exit code) when
 * stdout could not be written.
 */
int mesh_cli_generate(int argc, char **argv);

#endif
