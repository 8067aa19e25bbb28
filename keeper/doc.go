// Package keeper is the nomtstore module's query server: the
// nomtstore.v1.Query service over the live store. Every method only reads
// (engine statistics, commit infos, iterators at a retained version) and
// none takes a lock a commit waits for.
package keeper
