package module

import (
	"context"

	autocliv1 "cosmossdk.io/api/cosmos/autocli/v1"
	"cosmossdk.io/core/appmodule"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/runtime"
	"google.golang.org/grpc"

	"github.com/cosmos/cosmos-sdk/client"
	"github.com/cosmos/cosmos-sdk/codec"
	codectypes "github.com/cosmos/cosmos-sdk/codec/types"
	sdkmodule "github.com/cosmos/cosmos-sdk/types/module"

	"github.com/nomtstore/nomtstore/keeper"
	nomtstorev1 "github.com/nomtstore/nomtstore/proto/nomtstore/v1"
	"github.com/nomtstore/nomtstore/storev2/multistore"
)

// ModuleName is the module's name: its CLI commands are `query nomtstore
// ...` and its REST routes /nomtstore/v1/....
const ModuleName = "nomtstore"

// AppModule exposes the store's Query service the SDK way: the gRPC
// service, its gRPC-gateway (REST) routes and autocli commands. It has no
// state, messages or genesis of its own. Add it to the module manager, or,
// for an app whose module manager is fixed, call RegisterServices on the
// app's GRPCQueryRouter and RegisterGRPCGatewayRoutes from the app's
// RegisterAPIRoutes (cmd/nomtsimd does).
type AppModule struct {
	store *multistore.Store
}

// NewAppModule returns the module over the app's store. A nil store gives
// a module for building CLI commands only.
func NewAppModule(store *multistore.Store) AppModule { return AppModule{store: store} }

var (
	_ appmodule.AppModule      = AppModule{}
	_ appmodule.HasServices    = AppModule{}
	_ sdkmodule.AppModuleBasic = AppModule{}
	_ sdkmodule.HasName        = AppModule{}
)

// Name is ModuleName.
func (AppModule) Name() string { return ModuleName }

// IsOnePerModuleType marks the module for depinject.
func (AppModule) IsOnePerModuleType() {}

// IsAppModule marks the module for depinject.
func (AppModule) IsAppModule() {}

// RegisterLegacyAminoCodec registers nothing: the module has no messages.
func (AppModule) RegisterLegacyAminoCodec(*codec.LegacyAmino) {}

// RegisterInterfaces registers nothing: the module has no messages.
func (AppModule) RegisterInterfaces(codectypes.InterfaceRegistry) {}

// RegisterServices registers the Query service over the store.
func (am AppModule) RegisterServices(registrar grpc.ServiceRegistrar) error {
	nomtstorev1.RegisterQueryServer(registrar, keeper.NewQueryServer(am.store))
	return nil
}

// RegisterGRPCGatewayRoutes serves the Query service at /nomtstore/v1/....
func (AppModule) RegisterGRPCGatewayRoutes(clientCtx client.Context, mux *gwruntime.ServeMux) {
	if err := nomtstorev1.RegisterQueryHandlerClient(context.Background(), mux, nomtstorev1.NewQueryClient(clientCtx)); err != nil {
		panic(err)
	}
}

// AutoCLIOptions are the `query nomtstore` commands.
func (AppModule) AutoCLIOptions() *autocliv1.ModuleOptions {
	return &autocliv1.ModuleOptions{
		Query: &autocliv1.ServiceCommandDescriptor{
			Service: nomtstorev1.Query_serviceDesc.ServiceName,
			RpcCommandOptions: []*autocliv1.RpcCommandOptions{
				{RpcMethod: "Status", Use: "status", Short: "The store's versions, pruning, page table, disk use and WAL"},
				{
					RpcMethod: "Roots", Use: "roots [height]", Short: "Each store's root at a height (default: the latest)",
					PositionalArgs: []*autocliv1.PositionalArgDescriptor{{ProtoField: "height", Optional: true}},
				},
				{
					RpcMethod: "KeyCounts", Use: "key-counts [height]", Short: "Each store's key count at a height (walks every key)",
					PositionalArgs: []*autocliv1.PositionalArgDescriptor{{ProtoField: "height", Optional: true}},
				},
			},
		},
	}
}
