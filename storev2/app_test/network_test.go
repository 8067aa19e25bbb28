package app_test

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	sdkmath "cosmossdk.io/math"
	abci "github.com/cometbft/cometbft/abci/types"
	cmttypes "github.com/cometbft/cometbft/types"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cosmos/cosmos-sdk/crypto/hd"
	"github.com/cosmos/cosmos-sdk/crypto/keyring"
	"github.com/cosmos/cosmos-sdk/crypto/keys/secp256k1"
	"github.com/cosmos/cosmos-sdk/testutil/network"
	sdk "github.com/cosmos/cosmos-sdk/types"
	grpctypes "github.com/cosmos/cosmos-sdk/types/grpc"
	bankcli "github.com/cosmos/cosmos-sdk/x/bank/client/cli"
	banktypes "github.com/cosmos/cosmos-sdk/x/bank/types"
	stakingcli "github.com/cosmos/cosmos-sdk/x/staking/client/cli"
	stakingtypes "github.com/cosmos/cosmos-sdk/x/staking/types"
)

// TestNetworkSingleValidator runs the simapp on nomtstore as a one-validator
// in-process network: bank transfers and a delegation go through blocks,
// then balances and the delegation are read at past and latest heights by
// ABCI store queries, gRPC and REST, and store proofs are verified against
// the headers' app hashes.
func TestNetworkSingleValidator(t *testing.T) {
	cfg, apps := networkConfig(t, 1)
	net, err := network.New(t, t.TempDir(), cfg)
	require.NoError(t, err)
	defer net.Cleanup()
	val := net.Validators[0]
	requireOnNomtstore(t, net, apps)
	store := apps.store(t, val)
	versionAtStart := store.Engine().Version()

	ac := cfg.TxConfig.SigningContext().AddressCodec()
	vc := cfg.TxConfig.SigningContext().ValidatorAddressCodec()

	// alice: a new account in validator 0's keyring.
	rec, _, err := val.ClientCtx.Keyring.NewMnemonic("alice", keyring.English, sdk.FullFundraiserPath, keyring.DefaultBIP39Passphrase, hd.Secp256k1)
	require.NoError(t, err)
	alice, err := rec.GetAddress()
	require.NoError(t, err)

	// A prove=true store query needs a height > 1.
	waitHeight(t, val, 3)

	const tokenDenom = "node0token"
	bondDenom := cfg.BondDenom
	// No fee is charged: the ibc-go test simapp deducts none (netTxFees).
	fee := sdkmath.ZeroInt()
	valTokens := cfg.AccountTokens                             // node0token at genesis
	valStake := cfg.StakingTokens.Sub(cfg.BondedTokens)        // liquid stake after the gentx
	first, second := sdkmath.NewInt(1000), sdkmath.NewInt(500) // node0token sent to alice
	aliceStake, delegated := sdkmath.NewInt(5_000_000), sdkmath.NewInt(1_000_000)

	// Block h1: validator 0 sends alice 1000node0token and 5000000stake.
	h1 := execTx(t, val, bankcli.NewSendTxCmd(ac),
		val.Address.String(), alice.String(), sdk.NewCoins(sdk.NewCoin(tokenDenom, first), sdk.NewCoin(bondDenom, aliceStake)).String())
	// Block h2: 500node0token more.
	h2 := execTx(t, val, bankcli.NewSendTxCmd(ac),
		val.Address.String(), alice.String(), sdk.NewCoin(tokenDenom, second).String())
	// Block h3: alice delegates 1000000stake to validator 0.
	h3 := execTx(t, val, stakingcli.NewDelegateCmd(vc, ac),
		val.ValAddress.String(), sdk.NewCoin(bondDenom, delegated).String(), "--from=alice")
	require.Less(t, h1, h2)
	require.Less(t, h2, h3)
	before := h1 - 1
	require.GreaterOrEqual(t, before, int64(2))
	waitHeight(t, val, h3+2)
	st, err := val.RPCClient.Status(context.Background())
	require.NoError(t, err)
	latest := st.SyncInfo.LatestBlockHeight - 1 // its app hash is in the latest header
	require.Greater(t, latest, h3)
	t.Logf("heights: before %d, transfer 1 %d, transfer 2 %d, delegation %d, latest %d", before, h1, h2, h3, latest)

	// The store committed every block.
	require.GreaterOrEqual(t, store.Engine().Version(), uint64(latest))
	require.Greater(t, store.Engine().Version(), versionAtStart)

	// Balances at each height, by ABCI store query, gRPC and REST.
	for _, c := range []struct {
		height                   int64
		valTokens, aliceTokens   sdkmath.Int
		valStake, aliceStakeWant sdkmath.Int
	}{
		{before, valTokens, sdkmath.ZeroInt(), valStake, sdkmath.ZeroInt()},
		{h1, valTokens.Sub(first), first, valStake.Sub(aliceStake).Sub(fee), aliceStake},
		{h2, valTokens.Sub(first).Sub(second), first.Add(second), valStake.Sub(aliceStake).Sub(fee).Sub(fee), aliceStake},
		{h3, valTokens.Sub(first).Sub(second), first.Add(second), valStake.Sub(aliceStake).Sub(fee).Sub(fee), aliceStake.Sub(delegated).Sub(fee)},
		{latest, valTokens.Sub(first).Sub(second), first.Add(second), valStake.Sub(aliceStake).Sub(fee).Sub(fee), aliceStake.Sub(delegated).Sub(fee)},
	} {
		requireBalance(t, val, val.Address, tokenDenom, c.height, c.valTokens)
		requireBalance(t, val, alice, tokenDenom, c.height, c.aliceTokens)
		requireBalance(t, val, val.Address, bondDenom, c.height, c.valStake)
		requireBalance(t, val, alice, bondDenom, c.height, c.aliceStakeWant)
	}

	// The delegation: absent before h3, 1000000 shares from h3 on, by ABCI
	// store query and by gRPC at explicit heights.
	delKey := stakingtypes.GetDelegationKey(alice, val.ValAddress)
	require.Empty(t, abciStoreQuery(t, val, stakingtypes.StoreKey, delKey, h3-1, false).Value)
	stakingQuery := stakingtypes.NewQueryClient(val.ClientCtx)
	atHeight := func(h int64) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), grpctypes.GRPCBlockHeightHeader, strconv.FormatInt(h, 10))
	}
	_, err = stakingQuery.Delegation(atHeight(h3-1), &stakingtypes.QueryDelegationRequest{DelegatorAddr: alice.String(), ValidatorAddr: val.ValAddress.String()})
	require.Error(t, err)
	require.Equal(t, codes.NotFound, status.Code(err), "delegation at %d: %v", h3-1, err)
	for _, h := range []int64{h3, latest} {
		var del stakingtypes.Delegation
		require.NoError(t, cfg.Codec.Unmarshal(abciStoreQuery(t, val, stakingtypes.StoreKey, delKey, h, false).Value, &del))
		require.Equal(t, alice.String(), del.DelegatorAddress)
		require.Equal(t, val.ValAddress.String(), del.ValidatorAddress)
		require.Equal(t, sdkmath.LegacyNewDecFromInt(delegated).String(), del.Shares.String(), "shares at %d", h)
		res, err := stakingQuery.Delegation(atHeight(h), &stakingtypes.QueryDelegationRequest{DelegatorAddr: alice.String(), ValidatorAddr: val.ValAddress.String()})
		require.NoError(t, err)
		require.Equal(t, sdk.NewCoin(bondDenom, delegated).String(), res.DelegationResponse.Balance.String(), "delegation balance at %d", h)
	}
	// The validator's tokens grew by the delegation.
	validatorAt := func(h int64) stakingtypes.Validator {
		res, err := stakingQuery.Validator(atHeight(h), &stakingtypes.QueryValidatorRequest{ValidatorAddr: val.ValAddress.String()})
		require.NoError(t, err)
		return res.Validator
	}
	require.Equal(t, cfg.BondedTokens.String(), validatorAt(h3-1).Tokens.String())
	require.Equal(t, cfg.BondedTokens.Add(delegated).String(), validatorAt(h3).Tokens.String())

	// Proofs against the app hash of the next header.
	aliceTokenKey := balanceKey(alice, tokenDenom)
	t.Run("existence proof", func(t *testing.T) {
		res := abciStoreQuery(t, val, banktypes.StoreKey, aliceTokenKey, h1, true)
		require.Equal(t, first.String(), decodeBalance(t, res.Value).String())
		appHash := appHashAfter(t, val, h1)
		require.NoError(t, verifyProof(banktypes.StoreKey, aliceTokenKey, res.Value, res.ProofOps, appHash))
		// The proof binds the value, the key and the app hash.
		require.Error(t, verifyProof(banktypes.StoreKey, aliceTokenKey, []byte(second.String()), res.ProofOps, appHash))
		require.Error(t, verifyProof(banktypes.StoreKey, balanceKey(val.Address, tokenDenom), res.Value, res.ProofOps, appHash))
		require.Error(t, verifyProof(banktypes.StoreKey, aliceTokenKey, res.Value, res.ProofOps, appHashAfter(t, val, h2)))
		// The same key proves the second transfer's value at h2.
		res2 := abciStoreQuery(t, val, banktypes.StoreKey, aliceTokenKey, h2, true)
		require.Equal(t, first.Add(second).String(), decodeBalance(t, res2.Value).String())
		require.NoError(t, verifyProof(banktypes.StoreKey, aliceTokenKey, res2.Value, res2.ProofOps, appHashAfter(t, val, h2)))
		// And the delegation, in the staking store, at h3.
		res3 := abciStoreQuery(t, val, stakingtypes.StoreKey, delKey, h3, true)
		require.NotEmpty(t, res3.Value)
		require.NoError(t, verifyProof(stakingtypes.StoreKey, delKey, res3.Value, res3.ProofOps, appHashAfter(t, val, h3)))
	})
	t.Run("absence proof", func(t *testing.T) {
		// alice's balance before the first transfer.
		res := abciStoreQuery(t, val, banktypes.StoreKey, aliceTokenKey, before, true)
		require.Empty(t, res.Value)
		appHash := appHashAfter(t, val, before)
		require.NoError(t, verifyProof(banktypes.StoreKey, aliceTokenKey, nil, res.ProofOps, appHash))
		// An absence proof does not hold once the key exists.
		require.Error(t, verifyProof(banktypes.StoreKey, aliceTokenKey, nil, res.ProofOps, appHashAfter(t, val, h1)))
		// A never-funded address at the latest height.
		nobody := sdk.AccAddress(secp256k1.GenPrivKey().PubKey().Address())
		key := balanceKey(nobody, bondDenom)
		res = abciStoreQuery(t, val, banktypes.StoreKey, key, latest, true)
		require.Empty(t, res.Value)
		require.NoError(t, verifyProof(banktypes.StoreKey, key, nil, res.ProofOps, appHashAfter(t, val, latest)))
	})

	// The header app hashes are the store's commit info hashes, and each
	// version's commit info has its block's time (the module's header
	// listener stands in for baseapp's rootmulti-only SetCommitHeader).
	for h := int64(1); h <= latest; h++ {
		info, err := store.GetCommitInfo(h)
		require.NoError(t, err)
		require.Equal(t, h, info.Version)
		require.Equal(t, appHashAfter(t, val, h), info.Hash(), "app hash of %d", h)
		block, err := val.RPCClient.Commit(context.Background(), &h)
		require.NoError(t, err)
		require.True(t, block.Time.Equal(info.Timestamp), "commit info time of %d: %v, block time %v", h, info.Timestamp, block.Time)
	}
}

// TestNetworkThreeValidators runs the simapp on nomtstore with three
// validators: they agree on every height's app hash, a bank transfer
// commits, and every validator answers the same balance at the same height.
func TestNetworkThreeValidators(t *testing.T) {
	cfg, apps := networkConfig(t, 3)
	net, err := network.New(t, t.TempDir(), cfg)
	require.NoError(t, err)
	defer net.Cleanup()
	val := net.Validators[0]
	started := requireOnNomtstore(t, net, apps)

	// All three validators sign: the chain only advances with 2/3 of the
	// power, and each has a third.
	waitHeight(t, val, 5)

	ac := cfg.TxConfig.SigningContext().AddressCodec()
	recipient := sdk.AccAddress(secp256k1.GenPrivKey().PubKey().Address())
	amount := sdk.NewCoin("node0token", sdkmath.NewInt(4242))
	hTx := execTx(t, val, bankcli.NewSendTxCmd(ac), val.Address.String(), recipient.String(), sdk.NewCoins(amount).String())
	top := max(hTx+1, 5)
	waitAppsAtHeight(t, net, apps, top)
	waitHeight(t, val, top+1)
	for moniker, v := range requireOnNomtstore(t, net, apps) {
		require.Greater(t, v, started[moniker], "%s's store did not grow", moniker)
		require.GreaterOrEqual(t, v, top, moniker)
	}

	// Every height's app hash: the same in each validator's store, and the
	// one in validator 0's header of the next height.
	for h := int64(1); h <= top; h++ {
		want := appHashAfter(t, val, h)
		for _, v := range net.Validators {
			info, err := apps.store(t, v).GetCommitInfo(h)
			require.NoError(t, err, "%s at %d", v.Moniker, h)
			require.Equal(t, want, info.Hash(), "%s: app hash of %d", v.Moniker, h)
		}
	}
	// The headers' validator set is the three validators.
	vals, err := val.RPCClient.Validators(context.Background(), &top, nil, nil)
	require.NoError(t, err)
	require.Len(t, vals.Validators, 3)
	commit, err := val.RPCClient.Commit(context.Background(), &top)
	require.NoError(t, err)
	signed := 0
	for _, sig := range commit.Commit.Signatures {
		if sig.BlockIDFlag == cmttypes.BlockIDFlagCommit {
			signed++
		}
	}
	require.GreaterOrEqual(t, signed, 2, "commit of %d signed by %d validators", top, signed)

	// The transfer: the recipient's balance is absent before hTx and the
	// amount from hTx on, the same on every validator, with proofs that
	// verify against validator 0's headers.
	key := balanceKey(recipient, amount.Denom)
	senderKey := balanceKey(val.Address, amount.Denom)
	for _, c := range []struct {
		height            int64
		recipient, sender sdkmath.Int
	}{
		{hTx - 1, sdkmath.ZeroInt(), cfg.AccountTokens},
		{hTx, amount.Amount, cfg.AccountTokens.Sub(amount.Amount)},
		{top, amount.Amount, cfg.AccountTokens.Sub(amount.Amount)},
	} {
		appHash := appHashAfter(t, val, c.height)
		var values [][]byte
		for _, v := range net.Validators {
			app := apps.get(t, v)
			for _, q := range []struct {
				key  []byte
				want sdkmath.Int
			}{{key, c.recipient}, {senderKey, c.sender}} {
				res, err := app.Query(context.Background(), &abci.RequestQuery{Path: "/store/bank/key", Data: q.key, Height: c.height, Prove: true})
				require.NoError(t, err)
				require.Zero(t, res.Code, "%s: %s", v.Moniker, res.Log)
				require.Equal(t, c.height, res.Height)
				require.Equal(t, q.want.String(), decodeBalance(t, res.Value).String(), "%s: %X at %d", v.Moniker, q.key, c.height)
				require.NoError(t, verifyProof(banktypes.StoreKey, q.key, res.Value, res.ProofOps, appHash), "%s: %X at %d", v.Moniker, q.key, c.height)
				values = append(values, res.Value)
			}
		}
		for i := 2; i < len(values); i++ {
			require.True(t, bytes.Equal(values[i%2], values[i]), "validators disagree at %d", c.height)
		}
		// Validator 0 answers the same through its RPC.
		require.Equal(t, c.recipient.String(), abciBalance(t, val, recipient, amount.Denom, c.height).String())
	}
}
